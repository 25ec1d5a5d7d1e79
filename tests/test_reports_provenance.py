"""Reports that describe themselves: every JSON report records graphkit's environment, the
weights, the data and where inference ran; pass parameters are typed JSON values; bisect numbers
passes and sites from 1 in its text and JSON alike; two files= runners get distinct labels.

All on tiny inline models: a MatMul anti-spoofing "model" over 6 generated wav files.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import soundfile as sf
import tiny
import yaml
from onnx import TensorProto, helper, numpy_helper
from test_bisect import mlp_recipe, planted

from graphkit.cli import main
from graphkit.pipeline import provenance as P
from graphkit.runners.select import parse_runner, runner_labels

TESTS = Path(__file__).resolve().parent
SAMPLES = 64600  # the waveform_64600 features' row


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def read_json(out: Path, name: str) -> dict:
    """``out/name``, or that of the run ``out/latest`` names (eval and bench keep every run)."""
    found = [p for p in (out / name, out / "latest" / name, *sorted(out.glob(f"*/{name}"))) if p.is_file()]
    return json.loads(found[0].read_text())


def assert_environment(env: dict) -> None:
    assert env["graphkit"] == importlib.metadata.version("graphkit")
    assert env["python"].count(".") == 2
    assert set(env["packages"]) == {"onnx", "onnxruntime", "onnxsim", "onnx_graphsurgeon", "numpy", "torch"}
    assert env["packages"]["onnx"] == onnx.__version__
    assert env["host"]["logical_cpus"] >= 1 and env["host"]["physical_cores"] >= 1
    assert env["onnxruntime_threads"]["intra_op"] == env["host"]["physical_cores"]
    assert env["timestamp"].endswith("+00:00")  # UTC, ISO 8601


# -- the environment and identities ------------------------------------------------------------


def test_environment_names_versions_host_threads_and_time():
    env = P.environment()
    assert_environment(env)
    assert env["packages"]["numpy"] == np.__version__
    assert P._version("no-such-distribution-graphkit") is None  # not installed: null, no error


def test_environment_does_not_import_torch():
    """Recording torch's version must not cost torch's import (seconds)."""
    script = (
        "import sys, graphkit.pipeline.provenance as p; p.environment(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_cpu_model_and_physical_cores_from_cpuinfo():
    info = "processor : 0\nmodel name : Xeon X\nphysical id : 0\ncore id : 0\n\nprocessor : 1\n"
    info += (
        "model name : Xeon X\nphysical id : 0\ncore id : 0\n\nprocessor : 2\nphysical id : 1\ncore id : 0\n"
    )
    assert P._cpu_model(info) == "Xeon X"
    assert P._physical_cores(info) == 2  # two hyperthreads of core 0, and package 1's core 0
    assert P._cpu_model("") is None and P._physical_cores("") is None


def test_folder_identity_changes_with_a_name_or_a_size(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"1234")
    first = P.folder_identity(tmp_path)
    assert (first["files"], first["bytes"]) == (1, 4)
    assert P.folder_identity(tmp_path) == first
    (tmp_path / "a" / "x.wav").write_bytes(b"12345")
    resized = P.folder_identity(tmp_path)
    (tmp_path / "a" / "x.wav").rename(tmp_path / "a" / "y.wav")
    renamed = P.folder_identity(tmp_path)
    assert len({first["digest"], resized["digest"], renamed["digest"]}) == 3


def test_data_identity_hashes_the_trial_list_found_in_the_folder(tmp_path):
    (tmp_path / "id1").mkdir()
    (tmp_path / "id1" / "u.wav").write_bytes(b"00")
    (tmp_path / "veri_test.txt").write_text("1 id1/u.wav id1/u.wav\n")
    data = P.data_identity([(tmp_path, None)], limit=5)
    assert data["datasets"][0]["files"] == 2 and data["limit"] == 5
    assert data["trials"]["path"] == str(tmp_path / "veri_test.txt") and len(data["trials"]["sha256"]) == 64


def test_weights_identity_seeded_checkpoint_or_onnx_source(tmp_path):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"weights")
    builtin = SimpleNamespace(source=SimpleNamespace(onnx=None, weights=None))
    assert P.weights_identity(builtin) == "seeded"
    given = P.weights_identity(builtin, ckpt)
    assert given["kind"] == "checkpoint" and given["bytes"] == 7 and given["path"] == str(ckpt)
    onnx_source = SimpleNamespace(source=SimpleNamespace(onnx=ckpt, weights=None))
    assert P.weights_identity(onnx_source)["kind"] == "onnx source"


def test_model_identity_lists_external_data(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(tiny.conv1d_chain(), path, save_as_external_data=True, location="m.data", size_threshold=0)
    ident = P.path_identity(path)
    assert [Path(e["path"]).name for e in ident["external_data"]] == ["m.data"]
    assert "external_data" not in P.path_identity(tmp_path / "m.data")  # not a model: the file alone


def test_execution_provider_is_what_the_session_took():
    from graphkit.runners.base import Renamed
    from graphkit.runners.files import FilesRunner
    from graphkit.runners.select import open_runner

    with open_runner("onnxruntime", model=tiny.conv1d_chain()) as runner:
        assert P.execution_provider(runner) == "CPUExecutionProvider"
        assert P.execution_provider(Renamed(runner, {}, {}, set())) == "CPUExecutionProvider"
    files = FilesRunner.__new__(FilesRunner)  # no folder needed to say what it is
    assert P.execution_provider(files) == "files: outputs an NPU host wrote"
    module = SimpleNamespace(parameters=lambda: iter([SimpleNamespace(device="cuda:0")]))
    assert P.execution_provider(SimpleNamespace(kind="torch", module=module)) == "torch cuda:0"


# -- manifest, eval, bench, compare, lint ------------------------------------------------------


def spoof_model() -> onnx.ModelProto:
    """input (B, 64600) → MatMul → logits (B, 2)."""
    w = np.random.default_rng(0).standard_normal((SAMPLES, 2)).astype(np.float32) / 100
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["logits"])],
        "spoof",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", SAMPLES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 2])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> SimpleNamespace:
    """A tiny anti-spoofing recipe applied at batch 2, its 6 wav files, the preprocessed batches
    and two NPU output folders (om_a, om_b) written from them."""
    root = tmp_path_factory.mktemp("reports")
    onnx.save(spoof_model(), root / "spoof.onnx")
    recipe = {
        "name": "spoof",
        "source": {"onnx": "spoof.onnx"},
        "inputs": {"input": {"shape": ["B", SAMPLES], "range": [-0.1, 0.1]}},
        "outputs": ["logits"],
        "batch_sizes": [2],
        "passes": ["set_batch_size"],
        "task": {"kind": "anti_spoofing", "features": "waveform_64600", "output": "logits", "score_index": 1},
        "precision": {"emulate": False},
    }
    (root / "spoof.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    rng = np.random.default_rng(1)
    for label in ("bona", "spoof"):
        (root / label).mkdir()
        for k in range(3):
            sf.write(
                root / label / f"{label}{k}.wav",
                (rng.standard_normal(16000) * 0.05).astype(np.float32),
                16000,
            )
    data = ["--data", f"{root / 'bona'}=bonafide", "--data", f"{root / 'spoof'}=spoof"]
    out = root / "out"
    assert main(["-q", "apply", str(root / "spoof.yaml"), "-o", str(out)]) == 0
    pre = root / "pre"
    assert main(["-q", "preprocess", str(root / "spoof.yaml"), *data, "--batch", "2", "-o", str(pre)]) == 0
    from graphkit.ir.io import load_model
    from graphkit.ir.ort import session

    sess = session(load_model(out / "spoof_bs2.onnx"))  # weights in external data or not
    for name, noise in (("om_a", 0.0), ("om_b", 1e-3)):
        (root / name).mkdir()
        for bin_file in sorted((pre / "input").glob("*.bin")):
            x = np.fromfile(bin_file, np.float32).reshape(2, SAMPLES)
            np.save(root / name / f"{bin_file.stem}_0.npy", sess.run(None, {"input": x})[0] + noise)
    return SimpleNamespace(root=root, recipe=root / "spoof.yaml", out=out, data=data)


def test_manifest_records_environment_weights_data_and_provider(applied):
    manifest = json.loads((applied.out / "manifest.json").read_text())
    assert_environment(manifest["environment"])
    assert manifest["execution_provider"] == "CPUExecutionProvider"  # the parity checks' sessions
    assert manifest["weights"]["kind"] == "onnx source"
    assert manifest["weights"]["sha256"] == manifest["source"]["sha256"]
    assert manifest["data"] == {"seeded_rows": {"seed": 0}, "samples": []}


def test_eval_json_records_provenance_and_two_files_runners_apart(applied, capsys):
    out = applied.root / "eval"
    runners = ["--runner", "export", "--runner", f"files={applied.root / 'om_a'}"]
    runners += ["--runner", f"files={applied.root / 'om_b'}"]
    args = ["-q", "eval", str(applied.recipe), "--models", str(applied.out), *applied.data, *runners]
    assert main([*args, "-o", str(out)]) == 0
    table = capsys.readouterr().out
    assert "files:om_a" in table and "files:om_b" in table
    report = read_json(out, "eval.json")
    assert_environment(report["environment"])
    assert [(r["runner"], r["execution_provider"]) for r in report["results"]] == [
        ("export", "CPUExecutionProvider"),
        ("files:om_a bs2", "files: outputs an NPU host wrote"),
        ("files:om_b bs2", "files: outputs an NPU host wrote"),
    ]
    assert report["weights"]["kind"] == "onnx source" and len(report["weights"]["sha256"]) == 64
    datasets = report["data"]["datasets"]
    assert [(d["label"], d["files"]) for d in datasets] == [("bonafide", 3), ("spoof", 3)]
    assert report["data"]["trials"] is None and report["data"]["limit"] is None


def test_runner_labels_tell_clashing_runners_apart():
    def labels(*texts: str) -> list[str]:
        return runner_labels([parse_runner(t) for t in texts])

    assert labels("graphkit", "files=npu") == ["graphkit", "files"]  # no clash: as before
    assert labels("files=x/om_a", "files=x/om_b") == ["files:om_a", "files:om_b"]
    assert labels("files=a/out", "files=b/out", "files=c") == ["files:a/out", "files:b/out", "files:c"]
    assert labels("graphkit", "ort_cuda") == ["graphkit", "ort_cuda"]  # both run the emitted model
    assert labels("export", "export") == ["export #1", "export #2"]


def test_bench_json_records_provenance_per_row(applied):
    out = applied.root / "bench"
    args = ["-q", "bench", str(applied.recipe), "--models", str(applied.out), "--loops", "1", "--warmup", "0"]
    assert main([*args, "-o", str(out)]) == 0
    report = read_json(out, "bench.json")
    assert_environment(report["environment"])
    assert [r["execution_provider"] for r in report["rows"]] == ["CPUExecutionProvider"] * 2
    assert report["weights"]["kind"] == "onnx source" and report["data"] == {"seeded_rows": {"seed": 0}}


def test_compare_json_records_the_files_compared(tmp_path, capsys):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(tiny.conv1d_chain(), a)
    onnx.save(tiny.conv1d_chain(), b)
    assert main(["-q", "compare", str(a), str(b), "--batch", "2", "-o", str(tmp_path / "cmp"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    for report in (printed, written):
        assert_environment(report["environment"])
        assert report["execution_provider"] == "CPUExecutionProvider"
        assert report["files"]["a"]["path"] == str(a) and report["files"]["b"]["bytes"] == b.stat().st_size
        assert report["data"] == {"seeded_rows": {"seed": 0, "batch": 2}}


def test_lint_json_is_a_report_with_model_target_and_environment(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(tiny.conv1d_chain(), path)
    assert main(["lint", str(path), "--json"]) == 1  # dynamic-dim: an error
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["path"] == str(path) and len(report["model"]["sha256"]) == 64
    assert report["target"] == {"soc": "Ascend310P3", "cann": "8.0", "gear": None}
    assert (report["errors"], report["warnings"]) == (1, 1)
    assert [f["rule"] for f in report["findings"]] == ["dynamic-dim", "conv1d-chain"]
    assert_environment(report["environment"])


# -- pass parameters as typed JSON -------------------------------------------------------------


def test_passes_json_gives_typed_parameters(capsys):
    assert main(["passes", "--json"]) == 0
    params = {(p["name"], q["name"]): q for p in json.loads(capsys.readouterr().out) for q in p["params"]}
    assert params[("cleanup", "remove_unused_inputs")] == {
        "name": "remove_unused_inputs",
        "type": "bool",
        "default": False,
        "required": False,
    }
    assert params[("fold_uniform_attention", "tolerance")]["default"] == 1e-06
    assert params[("fold_constants", "size_threshold")] == {
        "name": "size_threshold",
        "type": "int | null",
        "default": None,
        "required": False,
    }
    mode = params[("set_implmode", "mode")]
    assert mode["type"] == "str" and mode["choices"] == ["high_performance", "high_precision"]
    assert params[("set_implmode", "op_types")]["default"] == ["Sigmoid"]
    assert params[("bind_inputs", "values")]["required"] is True


def test_a_default_json_cannot_hold_is_shown_as_its_repr():
    from graphkit.passes._infra import Param

    assert Param("p", Path, Path("x")).as_dict()["default"] == repr(Path("x"))
    assert Param("p", tuple, (1, 2)).as_dict()["default"] == [1, 2]


def test_passes_text_keeps_its_columns_for_long_names(capsys):
    assert main(["passes"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    contracts = {re.match(r"\S+\s+", line).end() for line in lines}  # fold_transpose_softmax's too
    docs = {re.match(r"\S+\s+\S+\s+", line).end() for line in lines}
    assert len(contracts) == 1 and len(docs) == 1, (contracts, docs)


# -- bisect: numbered from 1 in text and JSON alike ---------------------------------------------


def test_bisect_json_numbers_passes_and_sites_as_the_text_does(tmp_path, capsys):
    recipe = str(mlp_recipe(tmp_path, planted(6)))
    assert main(["-q", "bisect", recipe, "--batch", "4"]) == 1
    text = capsys.readouterr().out
    assert main(["-q", "bisect", recipe, "--batch", "4", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    bad = report["first_bad_pass"]
    assert (bad["step"], bad["name"]) == (2, "plugin_passes:scale_after_relu")
    assert f"first bad pass: #{bad['step']} '{bad['name']}'" in text
    assert report["passes"][bad["step"] - 1] == {"step": 2, "name": bad["name"]}
    site = report["sites"]["first_bad"]
    assert (site["site"], site["label"]) == (7, "relu_6")
    assert f"first bad site: #{site['site']} of {report['sites']['total']}: relu_6" in text
    assert f"with sites 1..{site['site']}:" in text
    assert_environment(report["environment"])
    assert report["execution_provider"] == "CPUExecutionProvider"
