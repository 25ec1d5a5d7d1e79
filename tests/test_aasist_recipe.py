"""Acceptance: `graphkit apply recipes/aasist.yaml --weights AASIST-L.pth` end to end.

At every batch size the session applies (conftest.AASIST_BATCHES) the final model matches the
export to max|Δ| ≤ 1e-4 on seeded input and real audio (apply's own check), and at 1, 4 and 16
it matches our PyTorch AASIST-L to max|Δ| ≤ 1e-4 on seeded input and real audio; it has no
ScatterND, no GatherElements, no Transpose pair around a Softmax and no 1-D Conv; the scores of
PyTorch and of the final ONNX rank a spread of 24 of the 260 real files identically; and the
Ascend guide's 1/16 constant is caught.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

torch = pytest.importorskip("torch")

from conftest import AASIST_BATCHES  # noqa: E402

from graphkit import testing  # noqa: E402
from graphkit.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
BATCHES = list(AASIST_BATCHES)
# Against PyTorch: bs1, every row distinct (4), rows repeated (16). At 64 the one run of 64 rows
# (~25 s) would repeat apply's own check of that model on real and seeded rows against the export,
# whose match with PyTorch does not depend on the batch (test_aasist_model, at batch 1 and 3).
AGAINST_PYTORCH = [1, 4, 16]


@pytest.fixture(scope="module")
def weights(aasist_weights) -> Path:
    return aasist_weights


@pytest.fixture(scope="module")
def emitted(aasist_emitted) -> Path:
    return aasist_emitted


@pytest.fixture(scope="module")
def model(weights):
    from graphkit.models.aasist import build_aasist_l

    return build_aasist_l(weights)


def real_files(shared: Path) -> list[Path]:
    data = shared / "data"
    files = sorted((data / "librispeech-test-other-10spk").rglob("*.flac"))
    files += sorted((data / "librispeech-train-clean-100-cohort").glob("*.flac"))
    files += sorted((data / "tts-synthetic-spoof-en").glob("*.flac"))
    return files


def waveform(path: Path) -> np.ndarray:
    from graphkit.data.samples import row_from_audio

    return row_from_audio(path, "waveform_64600", (64600,))


@pytest.mark.slow
def test_manifest_and_files(emitted):
    manifest = json.loads((emitted / "manifest.json").read_text())
    assert [b["batch"] for b in manifest["batches"]] == BATCHES
    for record in manifest["passes"] + [r for b in manifest["batches"] for r in b["passes"]]:
        assert record["nodes_after"] > 0  # the node count after each pass is recorded
    for b in manifest["batches"]:
        assert b["parity"]["logits"]["max_abs"] <= 1e-4 and b["parity"]["hidden"]["max_abs"] <= 1e-4
        assert '--optypelist_for_implmode="Sigmoid"' in b["atc_command"]
        assert "--op_select_implmode=high_performance" in b["atc_command"]
        assert f'--input_shape="input:{b["batch"]},64600"' in b["atc_command"]


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES)
def test_final_graph_structure(emitted, batch):
    m = onnx.load(str(emitted / f"aasist_l_bs{batch}.onnx"))
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    assert "ScatterND" not in ops and "GatherElements" not in ops
    producer = {o: n for n in m.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in m.graph.node:
        if n.op_type == "Softmax":
            before = producer.get(n.input[0])
            after = consumers.get(n.output[0], [])
            assert not (
                before is not None
                and before.op_type == "Transpose"
                and any(c.op_type == "Transpose" for c in after)
            )
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Conv":
            assert len(inits[n.input[1]].dims) == 4


@pytest.fixture(scope="module")
def rows(shared) -> np.ndarray:
    """4 rows of real audio (2 bona fide, 2 TTS) and 4 seeded rows."""
    files = real_files(shared)
    real = np.stack([waveform(f) for f in (files[0], files[150], files[190], files[259])])
    seeded = np.random.default_rng(5).uniform(-0.1, 0.1, (4, 64600)).astype(np.float32)
    return np.concatenate([real, seeded]).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model, rows):
    with torch.no_grad():
        return tuple(t.numpy() for t in model(torch.from_numpy(rows)))


@pytest.mark.slow
@pytest.mark.parametrize("batch", AGAINST_PYTORCH)
def test_matches_pytorch_on_seeded_and_real_audio(emitted, rows, reference, batch):
    idx = np.arange(batch) % len(rows)
    m = onnx.load(str(emitted / f"aasist_l_bs{batch}.onnx"))
    hidden, logits = testing.run(m, {"input": rows[idx]})
    assert np.max(np.abs(logits - reference[1][idx])) <= 1e-4
    assert np.max(np.abs(hidden - reference[0][idx])) <= 1e-4


@pytest.mark.slow
def test_real_files_rank_identically(emitted, model, shared):
    """A spread of 24 of the 260 files (PyTorch AASIST costs ~1.4 s a row on this CPU);
    benchmarks/aasist_scores.py ranks all 260."""
    files = real_files(shared)
    assert len(files) == 260
    x = np.stack([waveform(f) for f in files[::11][:24]])
    with torch.no_grad():
        ref = np.concatenate(
            [model(torch.from_numpy(x[i : i + 4]))[1][:, 1].numpy() for i in range(0, 24, 4)]
        )
    from graphkit.ir.ort import session

    sess = session(emitted / "aasist_l_bs4.onnx")
    got = np.concatenate([sess.run(["logits"], {"input": x[i : i + 4]})[0][:, 1] for i in range(0, 24, 4)])
    assert np.max(np.abs(got - ref)) <= 1e-4
    assert np.array_equal(np.argsort(ref, kind="stable"), np.argsort(got, kind="stable"))


@pytest.mark.slow
def test_the_guides_one_sixteenth_is_stopped(tmp_path, weights, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    recipe = yaml.safe_load((ROOT / "recipes" / "aasist.yaml").read_text())
    recipe["parity"].pop("samples")
    i = recipe["passes"].index("fold_uniform_attention")
    recipe["passes"].insert(i + 1, {"pass": "plugin_passes:guide_uniform_constants"})
    path = tmp_path / "guide.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    code = main(["apply", str(path), "-o", str(out), "--batch", "1", "--weights", str(weights)])
    err = capsys.readouterr().err
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert "parity failure at pass 'guide_uniform_constants'" in last, last
    assert not out.exists() or not any(p.suffix == ".onnx" for p in out.iterdir())
