"""Acceptance: `graphkit apply recipes/ecapa.yaml` end to end, checked against PyTorch.

Every emitted model (bs 1, 4, 8, 16, 32, 64) passes the ONNX checker, has no 1-D Conv and no
Squeeze→Unsqueeze pair between convs, and matches our PyTorch ECAPA-TDNN on onnxruntime to
max|Δ| ≤ 1e-4 on the embedding (cosine ≥ 0.99999), on seeded inputs and on log-mel features of
real speech.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphkit import testing

torch = pytest.importorskip("torch")


ROOT = Path(__file__).resolve().parent.parent
BATCHES = [1, 4, 8, 16, 32, 64]


@pytest.fixture(scope="module")
def emitted(ecapa_emitted) -> Path:
    return ecapa_emitted


@pytest.fixture(scope="module")
def rows(librispeech) -> np.ndarray:
    """4 seeded rows and 4 rows of log-mel features of real speech (4 speakers)."""
    from graphkit.data.audio import ecapa_features

    files = sorted(librispeech.rglob("*.flac"))[::25][:4]
    real = np.concatenate([ecapa_features(f) for f in files])
    seeded = np.random.default_rng(7).uniform(-1, 1, (4, 80, 200)).astype(np.float32)
    return np.concatenate([real, seeded]).astype(np.float32)


@pytest.mark.slow
def test_files_and_manifest(emitted):
    names = sorted(p.name for p in emitted.iterdir())
    assert names == sorted(
        [f"ecapa_tdnn_bs{b}.onnx" for b in BATCHES]
        + ["atc.sh", "fusion_switch.cfg", "manifest.json", "weights"]
    )
    # the sizes share their weights: each stored once, every file listed in the manifest
    shared = sorted(f"weights/{p.name}" for p in (emitted / "weights").iterdir())
    manifest = json.loads((emitted / "manifest.json").read_text())
    assert shared and shared == sorted(f for f in manifest["files"] if f.startswith("weights/"))
    assert [b["batch"] for b in manifest["batches"]] == BATCHES
    conv = next(p for p in manifest["passes"] if p["name"] == "conv1d_to_conv2d")
    assert conv["sites"] == 29  # every Conv of the model
    for b in manifest["batches"]:
        assert b["parity"]["embedding"]["max_abs"] <= 1e-4
        assert f'--input_shape="mel:{b["batch"]},80,200"' in b["atc_command"]
        assert "--input_format=ND" in b["atc_command"]


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES)
def test_structure(emitted, batch):
    model = onnx.load(str(emitted / f"ecapa_tdnn_bs{batch}.onnx"))
    onnx.checker.check_model(model, full_check=True)
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 29
    for n in convs:
        assert len(inits[n.input[1]].dims) == 4
        kernel = next(a.ints for a in n.attribute if a.name == "kernel_shape")
        assert len(kernel) == 2 and kernel[0] == 1
    producer = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type == "Unsqueeze":
            src = producer.get(n.input[0])
            assert src is None or src.op_type != "Squeeze", "Squeeze→Unsqueeze pair left"
    # The whole trunk is one 2-D region: it is left only where 2-D work starts — the three SE
    # branches (ReduceMean over time → Gemm) and the attentive pooling (Transpose).
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    squeezes = [n for n in model.graph.node if n.op_type == "Squeeze"]
    assert sorted(op for n in squeezes for op in consumers[n.output[0]]) == [
        "ReduceMean",
        "ReduceMean",
        "ReduceMean",
        "Transpose",
    ]


@pytest.fixture(scope="module")
def reference(rows):
    from graphkit.models.ecapa import build_ecapa

    module = build_ecapa(None, seed=0)  # the recipe's parity seed
    with torch.no_grad():
        emb, att = module(torch.from_numpy(rows))
    return emb.numpy(), att.numpy()


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES)
def test_matches_pytorch_on_seeded_and_real_inputs(emitted, rows, reference, batch):
    model = onnx.load(str(emitted / f"ecapa_tdnn_bs{batch}.onnx"))
    idx = np.arange(batch) % len(rows)
    emb, att = testing.run(model, {"mel": rows[idx]})
    ref_emb, ref_att = reference[0][idx], reference[1][idx]
    assert np.max(np.abs(emb - ref_emb)) <= 1e-4
    cos = np.sum(emb * ref_emb, axis=1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref_emb, axis=1))
    assert cos.min() >= 0.99999
    assert att.shape == (batch, 200, 1536)
    assert np.max(np.abs(att - ref_att)) <= 1e-5
