"""The precision advisor's checks against the node count, and the emulated runner's cost.

1. Synthetic chains of N = 16, 64, 256 nodes (tests/test_precision_advisor.py's ``chain``:
   every harmless node exact in fp16) with one or two planted fp16-sensitive sites: the checks
   the advisor needs, against 2·log2(N).
2. The emulated model (force_fp16, :func:`graphkit.ascend.precision.emulate`) against the fp32
   model on onnxruntime CPU, same process, seeded input, median of ``--repeat`` runs after a
   warm-up: the ECAPA and AASIST-L emitted models given (``graphkit apply ... --batch 4``).

Emulated on CPU, not measured on an NPU.

    graphkit apply recipes/ecapa.yaml --batch 4 -o /tmp/gk/ecapa
    graphkit apply recipes/aasist.yaml --batch 4 -o /tmp/gk/aasist \\
        --weights ../shared/models/aasist/AASIST-L.pth
    python benchmarks/precision_advisor.py --model /tmp/gk/ecapa/ecapa_tdnn_bs4.onnx \\
        --model /tmp/gk/aasist/aasist_l_bs4.onnx
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

ONE = [(16, {5: "cancel"}), (64, {21: "cancel"}), (256, {85: "cancel"})]
TWO = [
    (16, {3: "cancel", 11: "overflow"}),
    (64, {10: "cancel", 40: "overflow"}),
    (256, {40: "cancel", 200: "overflow"}),
]
CASES = ONE + TWO


def advisor_checks() -> list[str]:
    from test_precision_advisor import chain, run

    rows = [
        f"{'nodes':>6} {'planted':<22} {'candidates':>10} {'kept':>5} {'checks':>6} {'2·log2(N)':>9} {'s':>6}"
    ]
    for n, planted in CASES:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the planted ×1e6 weight overflows fp16
            advice = run(chain(n, planted))
        what = ", ".join(f"{k}@{i}" for i, k in planted.items())
        assert advice.found
        rows.append(
            f"{n:>6} {what:<22} {advice.candidates:>10} {len(advice.kept):>5} {advice.checks:>6} "
            f"{2 * math.log2(n):>9.0f} {time.perf_counter() - t:>6.2f}"
        )
    return rows


def runner_cost(path: Path, repeat: int) -> str:
    from graphkit.ascend.precision import PrecisionConfig, emulate
    from graphkit.ir.io import load_model
    from graphkit.ir.ort import session

    model = load_model(path)
    emulated = emulate(model, PrecisionConfig("force_fp16"))
    rng = np.random.default_rng(0)
    times = {}
    for label, m in (("fp32", model), ("emulated", emulated)):
        sess = session(m)
        feed = {
            i.name: (0.1 * rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape])).astype(
                np.float32
            )
            for i in sess.get_inputs()
        }
        sess.run(None, feed)  # warm-up
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            sess.run(None, feed)
            runs.append(time.perf_counter() - t)
        times[label] = statistics.median(runs)
    casts = sum(n.op_type == "Cast" for n in emulated.graph.node)
    return (
        f"{path.name:<24} {len(model.graph.node):>6} {casts:>6} {times['fp32'] * 1e3:>9.1f} "
        f"{times['emulated'] * 1e3:>9.1f} {times['emulated'] / times['fp32']:>6.2f}x"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, action="append", default=[], help="an emitted model (repeatable)")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    print("advisor checks on synthetic chains (parity gate, force_fp16):")
    print("\n".join(advisor_checks()))
    if args.model:
        print(f"\nemulated (force_fp16) vs fp32 on onnxruntime CPU, median of {args.repeat}:")
        print(f"{'model':<24} {'nodes':>6} {'casts':>6} {'fp32 ms':>9} {'emul ms':>9} {'ratio':>7}")
        for path in args.model:
            print(runner_cost(path, args.repeat))
    from graphkit.ascend.precision import NOTE

    print(f"\nnote: {NOTE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
