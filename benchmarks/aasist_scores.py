"""AASIST-L scores of all 260 real files: PyTorch against graphkit's final ONNX model.

Reads the 100 LibriSpeech test-other and 80 train-clean-100 files (bona fide) and the 80 TTS
files (spoof) in ../shared/data, first 64,600 samples, shorter files tiled (the upstream
loader), and reports max |Δ| of the bona fide score logits[:,1], whether both rank the 260 files
identically, and the ROC AUC bona fide vs TTS of each. PyTorch AASIST costs about 1.4 s a row
on a 2-core CPU, so this takes several minutes.

    python benchmarks/aasist_scores.py --model out/aasist_l/aasist_l_bs4.onnx \\
        --weights ../shared/models/aasist/AASIST-L.pth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a bona fide file > score of a spoof file), ties counted half."""
    diff = pos[:, None] - neg[None, :]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a final model of batch size B")
    p.add_argument("--weights", type=Path, default=ROOT.parent / "shared/models/aasist/AASIST-L.pth")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    args = p.parse_args()
    import torch

    from graphkit.data.samples import row_from_audio
    from graphkit.ir.ort import session
    from graphkit.models.aasist import build_aasist_l

    files = sorted((args.data / "librispeech-test-other-10spk").rglob("*.flac"))
    files += sorted((args.data / "librispeech-train-clean-100-cohort").glob("*.flac"))
    n_bona = len(files)
    files += sorted((args.data / "tts-synthetic-spoof-en").glob("*.flac"))
    x = np.stack([row_from_audio(f, "waveform_64600", (64600,)) for f in files])
    sess = session(args.model.read_bytes())
    b = sess.get_inputs()[0].shape[0]
    pad = (-len(x)) % b
    xp = np.concatenate([x, x[:pad]]) if pad else x
    onnx_scores = np.concatenate(
        [sess.run(["logits"], {"input": xp[i : i + b]})[0][:, 1] for i in range(0, len(xp), b)]
    )[: len(x)]
    model = build_aasist_l(args.weights)
    with torch.no_grad():
        torch_scores = np.concatenate(
            [model(torch.from_numpy(x[i : i + 4]))[1][:, 1].numpy() for i in range(0, len(x), 4)]
        )
    same = np.array_equal(np.argsort(torch_scores, kind="stable"), np.argsort(onnx_scores, kind="stable"))
    print(
        f"{len(files)} files ({n_bona} bona fide, {len(files) - n_bona} TTS spoof), model {args.model.name}"
    )
    print(f"  max |Δ| of logits[:,1], PyTorch vs ONNX: {np.max(np.abs(torch_scores - onnx_scores)):.3g}")
    print(f"  identical ranking of all files:          {same}")
    for name, s in (("PyTorch", torch_scores), ("ONNX", onnx_scores)):
        auc = roc_auc(s[:n_bona], s[n_bona:])
        print(
            f"  {name:8s} mean bona fide {s[:n_bona].mean():+.3f}, mean spoof {s[n_bona:].mean():+.3f}, "
            f"ROC AUC {auc:.4f}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
