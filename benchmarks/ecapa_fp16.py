"""ECAPA-TDNN under ATC's force_fp16, emulated on CPU: per-tensor fp16 issues and embedding cosine.

For seeded weights and for a checkpoint in the Ascend guide's format (``module.``-prefixed
``model_state_dict``, built here from other seeded weights: no trained ECAPA checkpoint ships with
../shared), apply the recipe at one batch size, then run the emitted model in fp32 and emulated
(:mod:`graphkit.ascend.precision`) on the log-mel features of real LibriSpeech utterances, and
print the cosine between the two embeddings of every utterance and the fp16 overflow/underflow
report of the first batch. An emulation on CPU, not an NPU measurement (see NOTE).

    python benchmarks/ecapa_fp16.py [--utterances 40] [--batch 4] [--mode force_fp16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graphkit.ascend.precision import NOTE, PrecisionConfig, emulate, fp16_issues  # noqa: E402
from graphkit.data.audio import ecapa_features  # noqa: E402
from graphkit.data.preprocess import make_batches  # noqa: E402
from graphkit.ir.ort import session  # noqa: E402
from graphkit.pipeline.apply import apply_recipe  # noqa: E402
from graphkit.recipe import load_recipe  # noqa: E402


def guide_checkpoint(path: Path, seed: int) -> Path:
    import torch

    from graphkit.models.ecapa import build_ecapa

    state = {"module." + k: v for k, v in build_ecapa(None, seed=seed).state_dict().items()}
    torch.save({"step": 1, "model_state_dict": state, "optimizer_state_dict": {}}, path)
    return path


def embeddings(sess, feats: np.ndarray, batch: int) -> np.ndarray:
    name = sess.get_inputs()[0].name
    out = [  # the preprocess layout: the last batch padded with its last row
        sess.run(["embedding"], {name: feats[list(b.items)]})[0][: b.valid]
        for b in make_batches(len(feats), batch)
    ]
    return np.concatenate(out).reshape(len(feats), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--mode", default="force_fp16")
    ap.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "librispeech-test-other-10spk"
    )
    args = ap.parse_args()
    files = sorted(args.data.rglob("*.flac"))[: args.utterances]
    feats = np.stack([ecapa_features(f, frames=200)[0] for f in files]).astype(np.float32)
    recipe = load_recipe(ROOT / "recipes" / "ecapa.yaml")
    config = PrecisionConfig(args.mode)
    print(f"ECAPA-TDNN, {len(files)} LibriSpeech utterances, bs{args.batch}, {config.mode}")
    print(f"({NOTE})\n")
    with tempfile.TemporaryDirectory() as tmp:
        for label, weights in (
            ("seeded weights", None),
            ("guide-format checkpoint", guide_checkpoint(Path(tmp) / "ckpt.pt", 3)),
        ):
            out = Path(tmp) / label.replace(" ", "_")
            result = apply_recipe(recipe, out, batch_sizes=[args.batch], weights=weights, parity=False)
            model_path = out / result.batches[0].file
            import onnx

            model = onnx.load(str(model_path))
            emulated = emulate(model, config)
            a = embeddings(session(model.SerializeToString()), feats, args.batch)
            b = embeddings(session(emulated.SerializeToString()), feats, args.batch)
            cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            issues = fp16_issues(model, config, {model.graph.input[0].name: feats[: args.batch]})
            print(
                f"{label}: embedding cosine fp32 vs emulated: min {cos.min():.8f} "
                f"(1 - cos {1 - cos.min():.2e}), mean {cos.mean():.8f}"
            )
            print(
                f"  max |Δ| of the embedding: {np.max(np.abs(a - b)):.3g} (max |x| {np.max(np.abs(a)):.3g})"
            )
            print(f"  fp16 issues on the first batch: {len(issues) or 'none'}")
            for issue in issues[:20]:
                print(f"    {issue.kind:9s} {issue.describe()}")


if __name__ == "__main__":
    main()
