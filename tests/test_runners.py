"""Runners: onnxruntime (static and dynamic batch), torch, ais_bench (unavailable here), files."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.data.preprocess import make_batches, read_index, write_batches
from graphkit.errors import DataError, ModelError, RecipeError, RunnerError, RunnerUnavailable, UsageError
from graphkit.recipe import InputSpec, load_recipe
from graphkit.runners import RUNNER_KINDS, RecipeRunners, Runner, RunnerChoice, open_runner, parse_runner
from graphkit.runners.ais_bench import AisBenchRunner, resolve_om
from graphkit.runners.files import FilesRunner
from graphkit.runners.onnxruntime import OnnxruntimeRunner, choose_providers
from graphkit.runners.select import BENCH_RUNNERS

ROOT = Path(__file__).resolve().parent.parent
W = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)


def tiny_model(batch: int | str = "B") -> onnx.ModelProto:
    """mel (B,4,6) → MatMul W (6,3) → Relu → emb (B,4,3); ReduceSum over the last axis → score (B,4)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["mel", "W"], ["mm"]),
            helper.make_node("Relu", ["mm"], ["emb"]),
            helper.make_node("ReduceSum", ["emb", "axes"], ["score"], keepdims=0),
        ],
        "tiny_runner",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [batch, 4, 6])],
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, [batch, 4, 3]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch, 4]),
        ],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.array([2], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def expected(mel: np.ndarray) -> dict[str, np.ndarray]:
    emb = np.maximum(mel @ W, 0)
    return {"emb": emb, "score": emb.sum(axis=2)}


def mel(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 4, 6)).astype(np.float32)


# --- factory -------------------------------------------------------------------------------


def test_runner_kinds_and_unknown_kind() -> None:
    assert RUNNER_KINDS == ("onnxruntime", "torch", "ais_bench", "files")
    with pytest.raises(UsageError, match="unknown runner 'onxruntime'.*did you mean 'onnxruntime'"):
        open_runner("onxruntime", model=b"")
    with pytest.raises(UsageError, match="unknown runner 'tensorflow'"):
        open_runner("tensorflow")


def test_open_runner_rejects_misspelled_option() -> None:
    with pytest.raises(UsageError, match="runner 'onnxruntime'.*did you mean 'threads'"):
        open_runner("onnxruntime", model=tiny_model().SerializeToString(), thread=2)


def test_runner_abc_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        Runner()  # type: ignore[abstract]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("tensorflow", "unknown runner 'tensorflow'"),
        ("grapkit", "did you mean 'graphkit'"),
        ("files", "files=DIR"),
        ("ais_bench=npu1", "the device id is a number"),
        ("torch=2", "takes no '=' argument"),
    ],
)
def test_runner_choices_are_parsed_once_for_every_command(text, error) -> None:
    with pytest.raises(UsageError, match=error):
        parse_runner(text)
    assert parse_runner("files=out/npu") == RunnerChoice("files", "out/npu")
    assert parse_runner("ais_bench=1").arg == "1" and parse_runner("graphkit").per_batch
    assert not parse_runner("torch").per_batch
    with pytest.raises(UsageError, match="runners: export, graphkit"):
        parse_runner("files=x", BENCH_RUNNERS)


def test_runners_are_checked_before_any_work(tmp_path: Path) -> None:
    """A missing models folder is said before a feature is extracted or a reference runs."""
    from graphkit.eval.bench import bench
    from graphkit.eval.evaluate import evaluate

    recipe = load_recipe(ROOT / "recipes" / "aasist.yaml")
    runners = RecipeRunners(recipe, models_dir=tmp_path / "nowhere")
    with pytest.raises(UsageError, match=r"aasist_l_bs4.onnx: not found; run `graphkit apply"):
        runners.check([RunnerChoice("graphkit")], [4])
    with pytest.raises(DataError, match="output folder not found"):
        runners.check([RunnerChoice("files", str(tmp_path / "npu"))], [4])
    with pytest.raises(RunnerUnavailable, match="ais_bench"):
        runners.check([RunnerChoice("ais_bench")], [4])
    runners.check([RunnerChoice("export")], [4])  # batch-free, nothing to find
    # the data folder does not exist either: the runner check comes first
    missing = [(tmp_path / "no-data", "bonafide")]
    with pytest.raises(UsageError, match="not found; run `graphkit apply"):
        evaluate(recipe, missing, runners=["export", "graphkit"], models_dir=tmp_path / "nowhere")
    with pytest.raises(UsageError, match="not found; run `graphkit apply"):
        bench(recipe, runners=["graphkit"], models_dir=tmp_path / "nowhere", batch_sizes=[1])


class _Echo(Runner):
    kind = "echo"
    label, batch, input_names, output_names = "echo", None, ("x",), ("y",)

    def _infer(self, feeds, key):  # noqa: ANN001, ANN202
        return {"y": feeds["x"]}


def test_infer_is_a_template_method() -> None:
    """The base class refuses a closed runner and a missing feed; a backend writes _infer only."""
    r = _Echo()
    assert r.infer({"x": np.ones(2)}, key="k")["y"].tolist() == [1.0, 1.0]
    with pytest.raises(RunnerError, match=r"echo \[k\]: no feed for input x"):
        r.infer({}, key="k")
    r.close()
    r.close()  # idempotent
    with pytest.raises(RunnerError, match="closed"):
        r.infer({"x": np.ones(2)}, key="k")


# --- onnxruntime ---------------------------------------------------------------------------


def test_onnxruntime_dynamic_batch(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model(), path)
    with open_runner("onnxruntime", model=path, threads=1) as r:
        assert isinstance(r, OnnxruntimeRunner) and r.kind == "onnxruntime"
        assert r.batch is None and r.output_names == ("emb", "score") and r.label == "tiny"
        assert r.providers == ("CPUExecutionProvider",)
        for rows in (1, 3):
            x = mel(rows)
            got = r.infer({"mel": x}, key="mel0")
            for name, want in expected(x).items():
                np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6)
        assert r.device_times_ms() is None
    with pytest.raises(RunnerError, match="closed"):
        r.infer({"mel": mel(1)}, key="mel0")


def test_onnxruntime_static_batch_bytes_and_output_subset() -> None:
    r = OnnxruntimeRunner(tiny_model(2).SerializeToString(), output_names=["score"], label="bs2")
    assert r.batch == 2 and r.output_names == ("score",) and r.label == "bs2"
    x = mel(2)
    np.testing.assert_allclose(r.infer({"mel": x}, key="mel0")["score"], expected(x)["score"], rtol=1e-5)
    with pytest.raises(RunnerError, match=r"bs2 \[mel1\]: onnxruntime failed"):
        r.infer({"mel": mel(3)}, key="mel1")
    with pytest.raises(RunnerError, match="no feed for input mel"):
        r.infer({"x": x}, key="mel0")
    with pytest.raises(RunnerError, match="no output 'nope'"):
        OnnxruntimeRunner(tiny_model(), output_names=["nope"])


def test_onnxruntime_bad_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        OnnxruntimeRunner(tmp_path / "missing.onnx")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        OnnxruntimeRunner(b"\x08\x07garbage\xff\xff")


def test_choose_providers() -> None:
    cpu = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cpu", gpu) == cpu
    assert choose_providers("auto", cpu) == cpu
    assert choose_providers("auto", gpu) == gpu
    assert choose_providers("auto", gpu[1:]) == gpu[1:]
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], gpu) == gpu[1:]
    with pytest.raises(RunnerUnavailable, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        choose_providers(["CUDAExecutionProvider"], cpu)


def test_onnxruntime_auto_runs_here() -> None:
    r = OnnxruntimeRunner(tiny_model(), providers="auto")
    assert r.providers[-1] == "CPUExecutionProvider"


# --- torch ---------------------------------------------------------------------------------


def test_torch_runner_on_a_module() -> None:
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.from_numpy(W.copy()))
            self.drop = torch.nn.Dropout(0.9)  # eval mode must switch it off

        def forward(self, x):
            emb = torch.relu(self.drop(x @ self.w))
            return emb, emb.sum(dim=2)

    module = Tiny().train()
    with open_runner("torch", module=module, input_names=["mel"], output_names=["emb", "score"]) as r:
        assert r.batch is None and r.kind == "torch" and not module.training
        x = mel(3)
        got = r.infer({"mel": x}, key="mel0")
        for name, want in expected(x).items():
            np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6)
        assert got["emb"].dtype == np.float32
    with pytest.raises(RunnerError, match="returned 2 outputs, expected 1"):
        open_runner("torch", module=module, input_names=["mel"], output_names=["emb"]).infer(
            {"mel": x}, key="mel0"
        )
    with pytest.raises(RunnerError, match="exactly one"):
        open_runner("torch")


def test_torch_runner_refuses_an_onnx_source(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    model_path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model(), model_path)
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(
        f"name: tiny\nsource: {{onnx: {model_path}}}\ninputs:\n  mel: {{shape: [B, 4, 6]}}\n"
        "batch_sizes: [1]\npasses: []\n"
    )
    try:
        recipe = load_recipe(recipe_path)
    except Exception as exc:  # the recipe schema belongs to another module: skip, do not guess
        pytest.skip(f"tiny recipe does not load: {exc}")
    with pytest.raises(RecipeError, match="ONNX file"):
        open_runner("torch", recipe=recipe)


def test_torch_runner_builds_the_recipe_model() -> None:
    pytest.importorskip("torch")
    with open_runner("torch", recipe=load_recipe(ROOT / "recipes" / "ecapa.yaml")) as r:
        assert r.input_names == ("mel",) and r.output_names == ("embedding", "attention")
        assert r.batch is None and r.label == "torch ecapa_tdnn"
        got = r.infer({"mel": np.zeros((1, 80, 200), np.float32)}, key="mel0")
        assert got["embedding"].shape == (1, 192) and np.isfinite(got["embedding"]).all()


def test_torch_runner_unavailable_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(
        RunnerUnavailable, match=r"pip install torch==2\.13\.0 && pip install 'graphkit\[torch\]'"
    ):
        open_runner("torch", module=object(), input_names=["mel"], output_names=["emb"])


# --- ais_bench -----------------------------------------------------------------------------


def test_ais_bench_unavailable_here(tmp_path: Path) -> None:
    try:
        import ais_bench  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ais_bench is installed here")
    with pytest.raises(RunnerUnavailable) as info:
        open_runner("ais_bench", om=tmp_path / "ecapa_bs4")
    msg = str(info.value)
    assert "aclruntime" in msg and "ais_bench" in msg and "set_env.sh" in msg
    assert "https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench" in msg
    assert AisBenchRunner.kind == "ais_bench"


def test_resolve_om_globs_the_arch_suffix(tmp_path: Path) -> None:
    exact = tmp_path / "plain.om"
    exact.write_bytes(b"om")
    assert resolve_om(exact) == exact
    suffixed = tmp_path / "ecapa_bs4_linux_aarch64.om"
    suffixed.write_bytes(b"om")
    assert resolve_om(tmp_path / "ecapa_bs4") == suffixed
    assert resolve_om(tmp_path / "ecapa_bs4.om") == suffixed  # the name ATC was asked for
    with pytest.raises(ModelError, match=r"no om model found \(looked for .*ecapa_bs8\*\.om\)"):
        resolve_om(tmp_path / "ecapa_bs8")
    (tmp_path / "ecapa_bs4_linux_aarch64_linux_aarch64.om").write_bytes(b"om")
    with pytest.raises(ModelError, match="2 om models match"):
        resolve_om(tmp_path / "ecapa_bs4")
    weird = tmp_path / "we[i]rd"
    (tmp_path / "we[i]rd_linux_x86_64.om").write_bytes(b"om")
    assert resolve_om(weird).name == "we[i]rd_linux_x86_64.om"


class FakeSession:
    """Stands in for InferSession to test the runner's own logic; nothing here claims an NPU ran."""

    def __init__(self, device_id: int, path: str) -> None:
        self.path = path
        self.freed = False

    def get_inputs(self):
        return [type("T", (), {"name": "mel", "shape": [2, 4, 6]})()]

    def get_outputs(self):
        return [type("T", (), {"name": n})() for n in ("emb", "score")]

    def infer(self, feeds, mode="static"):
        out = expected(feeds[0])
        return [out["emb"].astype(np.float16), out["score"]]

    def sumary(self):  # the shipped spelling
        return type("S", (), {"exec_time_list": [1.5, 2.5]})()

    def free_resource(self) -> None:
        self.freed = True


def test_ais_bench_runner_logic_with_a_stand_in_session(monkeypatch, tmp_path: Path, caplog) -> None:
    import graphkit.runners.ais_bench as ab

    monkeypatch.setattr(ab, "_import_interface", lambda: type("I", (), {"InferSession": FakeSession}))
    (tmp_path / "tiny_bs2_linux_x86_64.om").write_bytes(b"om")
    with AisBenchRunner(tmp_path / "tiny_bs2") as r:
        assert r.batch == 2 and r.output_names == ("emb", "score") and r.label == "tiny_bs2_linux_x86_64"
        got = r.infer({"mel": mel(2)}, key="mel0")
        assert got["emb"].dtype == np.float32 and r.fp16_outputs == {"emb"}  # widened, exactly
        assert "float16" in caplog.text
        assert r.device_times_ms() == [1.5, 2.5]
        session = r._session
    assert session.freed and r.device_times_ms() is None
    with pytest.raises(RunnerError, match="mode 'dymhw'"):
        AisBenchRunner(tmp_path / "tiny_bs2", mode="dymhw")


# --- files ---------------------------------------------------------------------------------

N_ITEMS, BATCH = 5, 2  # three batches, the last padded
SHAPES = {"emb": (4, 3), "score": (4,)}


@pytest.fixture(scope="module")
def npu_run(tmp_path_factory) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """Preprocessed batches and the tiny model's outputs on them: what the NPU host would compute."""
    root = tmp_path_factory.mktemp("files")
    data = mel(N_ITEMS, seed=7)
    spec = InputSpec("mel", ("B", 4, 6))
    write_batches(
        root / "input", make_batches(N_ITEMS, BATCH), lambda items: {"mel": data[list(items)]}, [spec], {}
    )
    index = read_index(root / "input")
    ort = OnnxruntimeRunner(tiny_model(BATCH))
    results = {e.key: ort.infer(index.feeds(e), key=e.key) for e in index.batches}
    assert list(results) == ["mel0", "mel1", "mel2"]
    return root, results


def write_layout(directory: Path, results, fmt: str, *, txt_format: str = "%.9g") -> None:
    for key, outs in results.items():
        for i, value in enumerate(outs.values()):
            if fmt == "msame_txt":
                path = directory / "20240101_120000" / f"{key}_output_{i}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                # one row per line, values separated by a space, as msame writes them
                rows = value.reshape(value.shape[0], -1)
                path.write_text("".join(" ".join(txt_format % v for v in row) + " \n" for row in rows))
            else:
                path = (
                    directory
                    / "2024_01_01-12_00_00"
                    / f"{key}_{i}.{'bin' if fmt == 'ais_bench_bin' else 'npy'}"
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                if fmt == "npy":
                    np.save(path, value)
                else:
                    value.tofile(path)
    (directory / "2024_01_01-12_00_00_summary.json").parent.mkdir(parents=True, exist_ok=True)
    (directory / "2024_01_01-12_00_00_summary.json").write_text("{}")


@pytest.mark.parametrize("fmt", ["msame_txt", "ais_bench_bin", "npy"])
def test_files_round_trip(npu_run, tmp_path: Path, fmt: str) -> None:
    _, results = npu_run
    write_layout(tmp_path, results, fmt)
    with open_runner(
        "files", directory=tmp_path, output_names=["emb", "score"], output_shapes=SHAPES, batch=BATCH
    ) as r:
        assert r.fmt == fmt and r.batch == BATCH and r.device_times_ms() is None
        for key, want in results.items():
            got = r.infer({}, key=key)  # feeds are ignored
            for name in ("emb", "score"):
                assert got[name].shape == want[name].shape and got[name].dtype == np.float32
                # %.9g text round-trips float32 exactly
                np.testing.assert_array_equal(got[name], want[name])


def test_files_txt_at_msame_precision(npu_run, tmp_path: Path) -> None:
    """msame-like 6-significant-digit text reads back to within float32 text precision."""
    _, results = npu_run
    write_layout(tmp_path, results, "msame_txt", txt_format="%g")
    r = FilesRunner(tmp_path, output_names=["emb", "score"], output_shapes=[(4, 3), (4,)])
    assert r.batch is None
    got = r.infer({}, key="mel1")
    np.testing.assert_allclose(got["emb"], results["mel1"]["emb"], rtol=1e-5, atol=1e-6)
    assert got["emb"].shape == (BATCH, 4, 3)


def test_files_fp16_bin(tmp_path: Path) -> None:
    value = np.arange(24, dtype=np.float16).reshape(2, 4, 3) / 8
    (tmp_path / "t").mkdir()
    value.tofile(tmp_path / "t" / "mel0_0.bin")
    r = FilesRunner(tmp_path, output_names=["emb"], output_shapes={"emb": (4, 3)}, dtype={"emb": "float16"})
    got = r.infer({}, key="mel0")["emb"]
    assert got.dtype == np.float32 and r.fp16_outputs == {"emb"}  # widened, exactly
    np.testing.assert_array_equal(got, value)


def test_files_errors(tmp_path: Path) -> None:
    kw = {"output_names": ["emb"], "output_shapes": {"emb": (4, 3)}, "batch": 2}
    with pytest.raises(DataError, match="output folder not found"):
        FilesRunner(tmp_path / "nope", **kw)
    with pytest.raises(DataError, match="no inference outputs found"):
        FilesRunner(tmp_path, **kw)
    a, b = tmp_path / "20240101_120000", tmp_path / "20240101_130000"
    a.mkdir()
    b.mkdir()
    (a / "mel0_output_0.txt").write_text(" ".join(["1.5"] * 24))
    (a / "mel1_output_0.txt").write_text(" ".join(["1.5"] * 23))
    (a / "mel2_output_0.txt").write_text("1.5 2.5 nan-ish 3")
    (a / "mel3_output_0.txt").write_text("1 2 3 4")
    (b / "mel3_output_0.txt").write_text("1 2 3 4")
    (a / "mel4_output_0.txt").write_bytes(b"\xff\xfe\x00")
    r = FilesRunner(tmp_path, **kw)
    assert r.fmt == "msame_txt"
    assert r.infer({}, key="mel0")["emb"].shape == (2, 4, 3)
    with pytest.raises(DataError, match=r"no mel9_output_0\.txt below it \(output 0 of batch 'mel9'\)"):
        r.infer({}, key="mel9")
    with pytest.raises(
        DataError, match=r"mel1_output_0\.txt: 23 values, expected 24 \(output 'emb': batch 2"
    ):
        r.infer({}, key="mel1")
    with pytest.raises(DataError, match=r"mel2_output_0\.txt: not a number: 'nan-ish'"):
        r.infer({}, key="mel2")
    with pytest.raises(DataError, match=r"2 files named mel3_output_0\.txt"):
        r.infer({}, key="mel3")
    with pytest.raises(DataError, match=r"mel4_output_0\.txt: not a text file"):
        r.infer({}, key="mel4")
    with pytest.raises(DataError, match="not a whole number of rows"):
        FilesRunner(tmp_path, **{**kw, "batch": None}).infer({}, key="mel1")
    (a / "mel0_0.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(DataError, match="several formats"):
        FilesRunner(tmp_path, **kw)
    with pytest.raises(DataError, match="7 bytes is not a whole number of float32"):
        FilesRunner(tmp_path, **kw, fmt="ais_bench_bin").infer({}, key="mel0")
    (a / "mel0_0.npy").write_bytes(b"not npy")
    with pytest.raises(DataError, match="not a valid .npy"):
        FilesRunner(tmp_path, **kw, fmt="npy").infer({}, key="mel0")
    with pytest.raises(RunnerError, match="unknown format 'txt'"):
        FilesRunner(tmp_path, **kw, fmt="txt")
    with pytest.raises(RunnerError, match="no output_shapes for score"):
        FilesRunner(tmp_path, output_names=["emb", "score"], output_shapes={"emb": (4, 3)})


def test_backends_are_imported_on_demand() -> None:
    import subprocess

    code = "import sys, graphkit.runners; print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
