"""AASIST-L (published weights) under ATC's force_fp16, emulated on CPU, over all 260 real files.

1. The bona fide score of every file (180 LibriSpeech bona fide, 80 TTS spoof in ../shared/data)
   from the emitted model in fp32 and emulated (:mod:`graphkit.ascend.precision`), with the
   score agreement and EER / ROC AUC of each.
2. The precision advisor (:func:`graphkit.debug.precision.advise`) with a score gate
   (max |Δ score| against fp32 <= --max-delta) on the first --advise-files files, then the kept
   set checked on all 260 files.

An emulation of the NPU's numerics on CPU, not an NPU measurement (see NOTE).

    python benchmarks/aasist_precision.py [--batch 8] [--max-delta 1e-3] [--advise-files 32]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graphkit.ascend.precision import NOTE, PrecisionConfig, emulate  # noqa: E402
from graphkit.data.preprocess import make_batches  # noqa: E402
from graphkit.data.samples import row_from_audio  # noqa: E402
from graphkit.debug.precision import Verdict, advise, with_kept  # noqa: E402
from graphkit.eval import scoring  # noqa: E402
from graphkit.ir.ort import session  # noqa: E402
from graphkit.pipeline.apply import apply_recipe  # noqa: E402
from graphkit.recipe import load_recipe  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def files() -> tuple[list[Path], np.ndarray]:
    bona = sorted((DATA / "librispeech-test-other-10spk").rglob("*.flac"))
    bona += sorted((DATA / "librispeech-train-clean-100-cohort").rglob("*.flac"))
    spoof = sorted((DATA / "tts-synthetic-spoof-en").rglob("*.flac"))
    return bona + spoof, np.array([True] * len(bona) + [False] * len(spoof))


def scores(model: onnx.ModelProto, rows: np.ndarray, batch: int) -> np.ndarray:
    sess = session(model.SerializeToString())
    name = sess.get_inputs()[0].name
    out = [  # the preprocess layout: the last batch padded with its last row
        sess.run(["logits"], {name: rows[list(b.items)]})[0][: b.valid, 1]
        for b in make_batches(len(rows), batch)
    ]
    return np.concatenate(out).astype(np.float64)


def metrics(s: np.ndarray, bona: np.ndarray) -> tuple[float, float]:
    eer, _ = scoring.compute_eer(s[bona], s[~bona])
    return 100 * float(eer), float(scoring.roc_auc(s[bona], s[~bona]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-delta", type=float, default=1e-3)
    ap.add_argument("--advise-files", type=int, default=32)
    ap.add_argument(
        "--weights", type=Path, default=ROOT.parent / "shared" / "models" / "aasist" / "AASIST-L.pth"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="  %(message)s")  # the advisor's checks, as they go
    logging.getLogger("graphkit").setLevel(logging.INFO)
    paths, bona = files()
    rows = np.stack([row_from_audio(p, "waveform_64600", (64600,)) for p in paths]).astype(np.float32)
    recipe = load_recipe(ROOT / "recipes" / "aasist.yaml")
    config = PrecisionConfig("force_fp16")
    with tempfile.TemporaryDirectory() as tmp:
        result = apply_recipe(recipe, Path(tmp) / "out", batch_sizes=[args.batch], weights=args.weights)
        model = onnx.load(str(Path(tmp) / "out" / result.batches[0].file))
    t0 = time.perf_counter()
    fp32 = scores(model, rows, args.batch)
    t1 = time.perf_counter()
    fp16 = scores(emulate(model, config), rows, args.batch)
    t2 = time.perf_counter()
    print(f"AASIST-L, published weights, {len(paths)} files ({bona.sum()} bona fide), bs{args.batch}")
    print(f"({NOTE})\n")
    table = [("fp32 (emitted model)", fp32), ("emulated force_fp16", fp16)]
    _print_table(table, fp32, bona)
    print(
        f"\nfp32 run {t1 - t0:.1f} s, emulated run {t2 - t1:.1f} s (ratio {(t2 - t1) / (t1 - t0):.2f})",
        flush=True,
    )

    subset = slice(0, args.advise_files)
    sub_rows, sub_ref = rows[subset], fp32[subset]

    def gate(candidate: onnx.ModelProto) -> Verdict:
        worst = float(np.max(np.abs(scores(candidate, sub_rows, args.batch) - sub_ref)))
        return Verdict(worst, None if worst <= args.max_delta else f"max |Δ score| {worst:.3g}")

    feed = {model.graph.input[0].name: rows[: args.batch]}
    advice = advise(model, config, gate, feed, gate_name=f"max |Δ score| <= {args.max_delta:g}")
    kept = scores(emulate(model, with_kept(config, advice.kept)), rows, args.batch)
    table.append((f"force_fp16 + keep_dtype ({len(advice.kept)} nodes)", kept))

    print()
    _print_table(table, fp32, bona)
    print(
        f"advisor: {advice.candidates} fp16 nodes, {advice.checks} checks on {args.advise_files} files, "
        f"kept {len(advice.kept)}: {', '.join(f'{n} ({o})' for n, o in zip(advice.kept, advice.kept_types))}"
    )


def _print_table(table: list[tuple[str, np.ndarray]], fp32: np.ndarray, bona: np.ndarray) -> None:
    print(f"{'model':40s} {'EER %':>8s} {'ROC AUC':>8s} {'max|Δ score|':>13s} {'mean|Δ score|':>14s}")
    for label, s in table:
        eer, auc = metrics(s, bona)
        d = np.abs(s - fp32)
        print(f"{label:40s} {eer:8.3f} {auc:8.5f} {d.max():13.3g} {d.mean():14.3g}", flush=True)


if __name__ == "__main__":
    main()
