"""Benchmark: AASIST-L through graphkit, and what the rewrites buy on onnxruntime CPU.

In one run:
  (a) export + apply time of recipes/aasist.yaml for six batch sizes (parity on), with the
      export alone shown beside it;
  (b) onnxruntime CPU throughput (rows/s = 1000·batch / mean latency ms) of the plain export
      against graphkit's final model at batch 1 and 16, and their ratio.

    python benchmarks/bench_aasist.py --weights ../shared/models/aasist/AASIST-L.pth [--loops 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 4, 8, 16, 32, 64)


def throughput(model_bytes: bytes, batch: int, loops: int) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-0.1, 0.1, (batch, 64600)).astype(np.float32)
    sess.run(None, {"input": x})  # warm-up
    times = []
    for _ in range(loops):
        t = time.perf_counter()
        sess.run(None, {"input": x})
        times.append((time.perf_counter() - t) * 1000)
    return 1000 * batch / float(np.mean(times))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=ROOT.parent / "shared/models/aasist/AASIST-L.pth")
    p.add_argument("--loops", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from graphkit.models.aasist import build_aasist_l
    from graphkit.pipeline.apply import apply_recipe
    from graphkit.pipeline.export import export_onnx
    from graphkit.recipe import load_recipe

    t = time.perf_counter()
    plain = export_onnx(
        build_aasist_l(args.weights),
        inputs={"input": (["B", 64600], "float32")},
        output_names=["hidden", "logits"],
        opset=11,
    )
    export_s = time.perf_counter() - t
    recipe = load_recipe(ROOT / "recipes" / "aasist.yaml")
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        apply_recipe(recipe, out, batch_sizes=BATCHES, weights=args.weights)
        apply_s = time.perf_counter() - t
        finals = {b: (Path(out) / f"aasist_l_bs{b}.onnx").read_bytes() for b in (1, 16)}
    rows = {}
    for b in (1, 16):
        rows[b] = (throughput(plain.SerializeToString(), b, args.loops), throughput(finals[b], b, args.loops))
    print("AASIST-L, six batch sizes", ",".join(map(str, BATCHES)))
    print(f"  export alone                      {export_s:.1f} s")
    print(f"  export + apply (parity on)        {apply_s:.1f} s")
    print("  onnxruntime CPU throughput (rows/s): plain export vs graphkit final")
    for b, (a, g) in rows.items():
        print(f"    batch {b:2d}: {a:7.2f} vs {g:7.2f}   ratio final/plain {g / a:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "export_s": export_s,
                    "apply_s": apply_s,
                    "throughput": {str(b): v for b, v in rows.items()},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
