"""`graphkit passes`, `graphkit inspect`, entry-point passes and `apply --weights`."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import onnx
import pytest
import tiny

from graphkit import testing
from graphkit.cli import main
from graphkit.passes import _infra as registry_mod
from graphkit.passes._infra import PassRegistry

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def test_passes_lists_name_contract_params_doc(capsys):
    assert main(["passes"]) == 0
    out = capsys.readouterr().out
    assert "conv1d_to_conv2d" in out and "exact" in out
    assert "set_implmode" in out and "approximate" in out
    assert "mode: 'high_performance' | 'high_precision' = 'high_performance'" in out
    assert main(["passes", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in listed} == set(PassRegistry().names())
    assert all(p["doc"] for p in listed)


def test_inspect_counts_1d_convs(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(tiny.conv1d_chain(), path)
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["conv1d"] == 2 and info["opset"] == 17
    assert info["inputs"] == [{"name": "x", "shape": ["B", 4, 16], "dtype": "float32"}]
    assert info["ops"]["Conv"] == 2
    lifted, _ = testing.apply_pass(tiny.conv1d_chain(), "conv1d_to_conv2d")
    onnx.save(lifted, path)
    assert main(["inspect", str(path)]) == 0
    assert "1-D convolutions: 0" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not onnx at all", b"\x0a\x05hello"])
def test_inspect_bad_file_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.onnx" in err[0]


def test_entry_point_passes_are_found_by_name(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    ep = EntryPoint("scale_first_conv_weight", "plugin_passes:scale_first_conv_weight", "graphkit.passes")
    monkeypatch.setattr(
        registry_mod, "entry_points", lambda group: [ep] if group == "graphkit.passes" else []
    )
    reg = PassRegistry()
    assert "scale_first_conv_weight" in reg.names()
    assert reg.get("scale_first_conv_weight").contract.kind == "exact"


def test_broken_entry_point_is_a_clear_error(monkeypatch):
    ep = EntryPoint("nothing", "no_such_module_xyz:thing", "graphkit.passes")
    monkeypatch.setattr(registry_mod, "entry_points", lambda group: [ep])
    with pytest.raises(Exception, match="entry point 'nothing'.*failed to load"):
        PassRegistry()


@pytest.mark.slow
def test_apply_with_a_guide_format_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from graphkit.models.ecapa import build_ecapa

    trained = build_ecapa(None, seed=3)
    state = {"module." + k: v for k, v in trained.state_dict().items()}
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"step": 1, "model_state_dict": state, "optimizer_state_dict": {}}, ckpt)
    out = tmp_path / "out"
    code = main(
        [
            "-q",
            "apply",
            str(ROOT / "recipes" / "ecapa.yaml"),
            "-o",
            str(out),
            "--batch",
            "2",
            "--weights",
            str(ckpt),
            "--no-parity",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["weights"] == str(ckpt)
    assert len(manifest["source"]["weights_sha256"]) == 64
    model = onnx.load(str(out / "ecapa_tdnn_bs2.onnx"))
    import numpy as np

    x = np.random.default_rng(0).uniform(-1, 1, (2, 80, 200)).astype(np.float32)
    with torch.no_grad():
        ref = trained(torch.from_numpy(x))[0].numpy()
    assert np.max(np.abs(testing.run(model, {"mel": x})[0] - ref)) <= 1e-4


def test_data_folders_may_have_an_equals_sign_in_their_name(tmp_path):
    from graphkit.cli._args import data_source
    from graphkit.errors import UsageError

    odd = tmp_path / "run=3"
    odd.mkdir()
    assert data_source(str(odd)) == (odd, None)
    assert data_source(f"{odd}=spoof") == (odd, "spoof")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert data_source(f"{plain}=bonafide") == (plain, "bonafide")
    with pytest.raises(UsageError, match="the label after '=' is bonafide or spoof"):
        data_source(f"{plain}=real")


def test_a_closed_pipe_ends_the_listing_quietly():
    """`graphkit passes | head -1`: no BrokenPipeError traceback, the shell's 141."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "passes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # before the child writes: its first flush meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err, err
