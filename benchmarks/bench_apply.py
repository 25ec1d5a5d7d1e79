"""Benchmark: `graphkit apply` on the ECAPA recipe against the hand workflow's own cost.

In one run, on one machine:
  (a) the wall time of apply_recipe(recipes/ecapa.yaml) for six batch sizes, parity on
      (export, passes, per-pass and per-batch parity, emission);
  (b) the time of export plus onnxsim alone for the same six batch sizes: one static-batch
      export and one onnxsim.simplify per batch size, as the ModelZoo scripts do;
and their ratio (target <= 2).

    python benchmarks/bench_apply.py [--batch 1,4,8,16,32,64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_apply(batches: tuple[int, ...]) -> float:
    from graphkit.pipeline.apply import apply_recipe
    from graphkit.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "ecapa.yaml")
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        apply_recipe(recipe, out, batch_sizes=batches, parity=True)
        return time.perf_counter() - t


def time_export_onnxsim(batches: tuple[int, ...]) -> float:
    import onnxsim

    from graphkit.models.ecapa import build_ecapa
    from graphkit.pipeline.export import export_onnx

    t = time.perf_counter()
    module = build_ecapa(None, seed=0)
    for b in batches:
        model = export_onnx(
            module,
            inputs={"mel": ([b, 80, 200], "float32")},
            output_names=["embedding", "attention"],
            opset=17,
        )
        onnxsim.simplify(model)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", default="1,4,8,16,32,64")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    batches = tuple(int(b) for b in args.batch.split(","))
    logging.basicConfig(level=logging.WARNING)
    baseline = time_export_onnxsim(batches)  # first: torch's import cost lands here, not on us
    apply_s = time_apply(batches)
    ratio = apply_s / baseline
    rows = [
        ("graphkit apply (parity on)", f"{apply_s:.1f} s"),
        ("export + onnxsim alone", f"{baseline:.1f} s"),
        ("ratio (target <= 2)", f"{ratio:.2f}"),
    ]
    print(f"ECAPA-TDNN, batch sizes {','.join(map(str, batches))}")
    for name, value in rows:
        print(f"  {name:28s} {value}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"batches": batches, "apply_s": apply_s, "export_onnxsim_s": baseline, "ratio": ratio},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
