"""graphkit.models.ecapa (the guide's ECAPA-TDNN) and graphkit.pipeline.export.

The full model is exported to ONNX once per module (``exported`` fixture, marked slow); the
generic export tests use a tiny module.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from graphkit.errors import ModelError  # noqa: E402
from graphkit.models import BUILTIN_MODELS  # noqa: E402
from graphkit.models.ecapa import MODEL_INFO, build_ecapa  # noqa: E402
from graphkit.pipeline.export import export_onnx  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The state dict of seed-models.md §4.2, written out: 228 tensors. Every conv and linear has a
# bias; every BatchNorm has weight, bias, running_mean, running_var and num_batches_tracked.

BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(name: str, c: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.{f}", () if f == "num_batches_tracked" else (c,)) for f in BN_FIELDS]


def _layer(name: str, weight: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.weight", weight), (f"{name}.bias", (weight[0],))]


def _block(k: int) -> list[tuple[str, tuple[int, ...]]]:
    b = f"se_res2block_{k}"
    rows = _layer(f"{b}.conv1d_expand", (4096, 512, 1)) + _bn(f"{b}.batchnorm_expand", 4096)
    for i in range(7):
        rows += _layer(f"{b}.res2conv1d_list.{i}", (512, 512, 3))
    for i in range(7):
        rows += _bn(f"{b}.res2batch_norm_list.{i}", 512)
    rows += _layer(f"{b}.conv1d_collapse", (512, 4096, 1)) + _bn(f"{b}.batchnorm_collapse", 512)
    return rows + _layer(f"{b}.fc_1", (128, 512)) + _layer(f"{b}.fc_2", (512, 128))


EXPECTED_STATE = (
    _layer("conv1d_in", (512, 80, 5))
    + _bn("batchnorm_in", 512)
    + _block(1)
    + _block(2)
    + _block(3)
    + _layer("conv1d_out", (1536, 1536, 1))
    + _layer("attentive_stat_pooling.linear1", (128, 1536))
    + _layer("attentive_stat_pooling.linear2", (1536, 128))
    + _bn("batchnorm_2", 3072)
    + _layer("fc", (192, 3072))
    + _bn("batchnorm_3", 192)
    + [("speaker_embedding.weight_g", (1211, 1)), ("speaker_embedding.weight_v", (1211, 192))]
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_ecapa()


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    """A stand-in for trained weights: seed 1 with random BN statistics, so a loaded
    checkpoint (and the ONNX BN nodes) differ visibly from a default initialisation."""
    net = build_ecapa(seed=1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.num_batches_tracked.fill_(1000)
    return net


@pytest.fixture(scope="module")
def mel() -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.standard_normal((3, 80, 200)).astype(np.float32))


def _run(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        return net(x)


@pytest.fixture(scope="module")
def trained_out(trained, mel) -> tuple[torch.Tensor, torch.Tensor]:
    """The PyTorch reference on ``mel`` (a forward pass takes seconds on CPU: run it once)."""
    return _run(trained, mel)


# --- architecture -----------------------------------------------------------------------------


def test_state_dict_matches_the_guide_table(model):
    state = model.state_dict()
    assert len(EXPECTED_STATE) == 228
    assert list(state) == [key for key, _ in EXPECTED_STATE]
    assert {k: tuple(v.shape) for k, v in state.items()} == dict(EXPECTED_STATE)


def test_parameter_counts_match_the_guide(model):
    learnable = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.speaker_embedding.parameters())
    elements = sum(t.numel() for t in model.state_dict().values())
    # measured here; §4.2 states 33.36 M learnable, 33.13 M without the head, 33.42 M elements
    assert (learnable, learnable - head, elements) == (33_359_163, 33_125_440, 33_415_897)
    assert round(learnable / 1e6, 2) == 33.36
    assert round((learnable - head) / 1e6, 2) == 33.13
    assert round(elements / 1e6, 2) == 33.42


def test_model_info_agrees_with_the_builtin_table():
    assert MODEL_INFO.inputs == {"mel": (("B", 80, 200), "float32")}
    assert MODEL_INFO.outputs == ("embedding", "attention")
    assert BUILTIN_MODELS["ecapa_tdnn"] == MODEL_INFO


def test_forward_outputs(model, mel):
    assert not model.training
    embedding, attention = _run(model, mel[:1])
    assert embedding.shape == (1, 192) and attention.shape == (1, 200, 1536)
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(1))
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(1, 1536))  # softmax over time


def test_seeded_build_is_reproducible_and_keeps_the_global_rng(model, mel, caplog):
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    with caplog.at_level(logging.WARNING, logger="graphkit.models"):
        again = build_ecapa()
    assert torch.equal(torch.rand(3), expected)  # the global RNG stream is untouched
    assert "meaningless" in caplog.text and "parity" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    other = build_ecapa(seed=1).state_dict()["conv1d_in.weight"]
    assert not torch.equal(other, model.state_dict()["conv1d_in.weight"])


# --- checkpoints --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(trained, tmp_path_factory) -> Path:
    """A checkpoint in the guide's format: DataParallel 'module.' keys beside step/optimizer."""
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    state = {"module." + k: v for k, v in trained.state_dict().items()}
    torch.save({"step": 1, "model_state_dict": state, "optimizer_state_dict": {}}, path)
    return path


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_guide_checkpoint_round_trip(trained, trained_out, model, checkpoint, mel, caplog):
    with caplog.at_level(logging.WARNING, logger="graphkit.models"):
        loaded = build_ecapa(checkpoint)
    assert "meaningless" not in caplog.text
    assert not loaded.training
    assert _same_state(loaded, trained) and not _same_state(loaded, model)
    got = _run(loaded, mel)
    assert all(torch.equal(a, b) for a, b in zip(got, trained_out))


def test_bare_state_dict_loads(trained, tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(trained.state_dict(), path)
    assert _same_state(build_ecapa(path), trained)


def _bad_state(trained: torch.nn.Module, case: str) -> object:
    state = dict(trained.state_dict())
    if case == "missing":
        del state["se_res2block_2.fc_1.bias"]
    elif case == "extra":
        state["se_res2block_2.fc_3.weight"] = torch.zeros(1)
    elif case == "shape":
        state["fc.weight"] = torch.zeros(192, 1536)
    elif case == "speakers":
        state["speaker_embedding.weight_g"] = torch.ones(5994, 1)
        state["speaker_embedding.weight_v"] = torch.zeros(5994, 192)
    elif case == "no_state":
        return {"step": 1, "optimizer_state_dict": {}}
    return {"step": 1, "model_state_dict": state}


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "missing keys se_res2block_2.fc_1.bias"),
        ("extra", "unexpected keys se_res2block_2.fc_3.weight"),
        ("shape", "wrong shapes fc.weight (192, 1536) != (192, 3072)"),
        ("speakers", "pass n_speakers=5994"),
        ("no_state", "holds no state dict"),
    ],
)
def test_mismatched_checkpoints_raise_model_error(trained, tmp_path, case, needle):
    path = tmp_path / f"{case}.pt"
    torch.save(_bad_state(trained, case), path)
    with pytest.raises(ModelError) as info:
        build_ecapa(path)
    message = str(info.value)
    assert str(path) in message and needle in message and "\n" not in message


def test_head_size_follows_n_speakers(trained, tmp_path):
    path = tmp_path / "vox2.pt"
    torch.save(_bad_state(trained, "speakers"), path)
    assert build_ecapa(path, n_speakers=5994).speaker_embedding.weight_v.shape == (5994, 192)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "not found"),
        (b"", "not a PyTorch checkpoint"),
        (b"name,value\nalpha,1\n", "not a PyTorch checkpoint"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a PyTorch checkpoint"),
    ],
)
def test_unreadable_files_raise_model_error(tmp_path, content, needle):
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=needle) as info:
        build_ecapa(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_with_foreign_objects_is_refused(tmp_path):
    path = tmp_path / "numpy.pt"
    torch.save({"model_state_dict": {"conv1d_in.weight": np.zeros(3)}}, path)
    with pytest.raises(ModelError, match="weights_only=True.*Unsupported global"):
        build_ecapa(path)


# --- export: the full model, once ---------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(trained) -> onnx.ModelProto:
    return export_onnx(trained, inputs=MODEL_INFO.inputs, output_names=MODEL_INFO.outputs)


@pytest.fixture(scope="module")
def session(exported) -> ort.InferenceSession:
    return ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.slow
def test_export_signature(exported):
    graph = exported.graph
    assert [(i.name, _dims(i)) for i in graph.input] == [("mel", ["B", 80, 200])]
    assert [(o.name, _dims(o)) for o in graph.output] == [
        ("embedding", ["B", 192]),
        ("attention", ["B", 200, 1536]),
    ]
    assert [(o.domain, o.version) for o in exported.opset_import] == [("", 17)]
    onnx.checker.check_model(exported)


@pytest.mark.slow
def test_export_leaves_out_the_speaker_head(exported):
    shapes = {tuple(t.dims) for t in exported.graph.initializer}
    assert (1211, 192) not in shapes and (1211, 1) not in shapes
    convs = [n for n in exported.graph.node if n.op_type == "Conv"]
    assert len(convs) == 29  # as the guide's graph (§4.2)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3])
def test_export_matches_pytorch(session, mel, trained_out, batch):
    # eval mode: every row is independent of the batch, so the batch-3 reference serves both
    embedding, attention = session.run(None, {"mel": mel[:batch].numpy()})
    want_embedding, want_attention = (t[:batch].numpy() for t in trained_out)
    assert embedding.shape == (batch, 192) and attention.shape == (batch, 200, 1536)
    assert np.abs(embedding - want_embedding).max() <= 1e-4
    assert (embedding * want_embedding).sum(axis=1).min() >= 0.99999  # both are unit vectors
    assert np.abs(attention - want_attention).max() <= 1e-5


# --- export: the generic function on a tiny module ------------------------------------------------


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 6, 3, padding=1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.softmax(self.conv(x), dim=2) + bias.to(x.dtype).unsqueeze(2)
        return y, y.mean(dim=1)


TINY_INPUTS = {"x": (["N", 4, "T"], "float32"), "bias": (["N", 6], "int64")}


@pytest.mark.parametrize("opset", [11, 12, 13, 14, 15, 16, 17])
def test_export_opsets_and_dynamic_dims(opset):
    net = _Tiny().eval()
    model = export_onnx(net, inputs=TINY_INPUTS, output_names=["y", "m"], opset=opset)
    assert model.opset_import[0].version == opset
    assert [_dims(i) for i in model.graph.input] == [["N", 4, "T"], ["N", 6]]
    (y, m) = (_dims(o) for o in model.graph.output)
    # ONNX shape inference carries N through to the outputs but not T through the Conv: that
    # dim keeps the exporter's generated name; it is dynamic all the same
    assert y[:2] == ["N", 6] and m[0] == "N" and isinstance(y[2], str) and isinstance(m[1], str)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((5, 4, 9)).astype(np.float32)
    bias = np.arange(30, dtype=np.int64).reshape(5, 6)
    with torch.inference_mode():
        want = net(torch.from_numpy(x), torch.from_numpy(bias))
    for got, ref in zip(session.run(None, {"x": x, "bias": bias}), want):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_export_is_quiet(capfd, caplog):
    class Unsupported(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.fft(x).real

    export_onnx(_Tiny(), inputs=TINY_INPUTS, output_names=["y", "m"])
    log_was_on = torch._C._jit_is_onnx_log_enabled()  # a raw torch export elsewhere may set it
    with caplog.at_level(logging.DEBUG, logger="graphkit.pipeline.export"):
        with pytest.raises(ModelError, match="aten::fft_fft.* opset version 17 is not supported"):
            export_onnx(Unsupported(), inputs={"x": ([8], "float32")}, output_names=["y"])
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert "Torch IR graph at exception" in caplog.text  # torch's dump went to the debug log
    assert torch._C._jit_is_onnx_log_enabled() == log_was_on  # the export restores it


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"opset": 10}, "opsets 11–17"),
        ({"opset": 18}, "opsets 11–17"),
        ({"output_names": ["y"]}, r"outputs \['y', "),
        ({"output_names": ["y", "m", "z"]}, "exceeded number of outputs"),
        ({"inputs": {"x": (["N", 4, 0], "float32")}}, "dim 2 is 0"),
        ({"inputs": {"x": (["N", 4, "T"], "float99")}}, "unknown dtype"),
        ({"inputs": {"x": (["N", 4, "T"], "float32")}}, "export failed at opset 17"),
    ],
)
def test_export_errors_are_model_errors(kwargs, needle):
    args = {"inputs": TINY_INPUTS, "output_names": ["y", "m"]} | kwargs
    with pytest.raises(ModelError, match=needle):
        export_onnx(_Tiny(), **args)


def test_export_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ModelError, match=r"pip install torch==2\.13\.0 && pip install 'graphkit\[torch\]'"):
        export_onnx(object(), inputs={"x": ([1], "float32")}, output_names=["y"])
