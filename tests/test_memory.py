"""Runs that would not fit in memory are refused in one line before they start, never thrash.

graphkit.ir.memory estimates one onnxruntime run (shape inference, then the live tensors in
graph order) and compares it with the memory available; apply's parity checks and eval's and
bench's batch sizes are sized so. A recipe shape too large to ever feed is a recipe error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper
from test_apply import error_lines, write_recipe
from test_interrupt_eval import task_recipe

from graphkit.cli import main
from graphkit.ir import memory
from graphkit.ir.memory import MemoryLimitError, check_fits, run_bytes
from graphkit.ir.ort import run_model

ROOT = Path(__file__).resolve().parent.parent


def relu_chain(n: int, batch: int | str = "B") -> onnx.ModelProto:
    """x [batch, n] -> Relu -> Relu -> Relu -> y: three activations of n floats a row."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Relu", ["b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_estimate_counts_live_tensors_in_graph_order():
    row = 1000 * 4
    # x is held by the caller throughout; at the last node a and y are live (b freed after it)
    assert run_bytes(relu_chain(1000), 1) == 3 * row
    assert run_bytes(relu_chain(1000), 10) == 30 * row  # the symbolic batch set to 10
    static = relu_chain(1000, batch=5)
    assert run_bytes(static) == 15 * row  # at its own batch
    assert run_bytes(static, 20) == 4 * run_bytes(static)  # another batch: scaled


def test_the_estimate_is_near_what_onnxruntime_takes(tmp_path):
    """Must not fire low where it matters: at least the bytes of the feeds and the outputs."""
    model = relu_chain(250_000)
    need = run_bytes(model, 8)
    (out,) = run_model(model, [{"x": np.ones((8, 250_000), np.float32)}], ["y"])
    assert need >= 2 * out["y"].nbytes


def test_available_memory_reads_the_cgroup_limit(tmp_path, monkeypatch):
    folder = tmp_path / "sys" / "mine"
    folder.mkdir(parents=True)
    (folder / "memory.max").write_text("1073741824\n")
    (folder / "memory.current").write_text("268435456\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/mine\n")
    real = Path.read_text

    def read_text(self, *args, **kwargs):
        return real(proc if str(self) == "/proc/self/cgroup" else self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert memory._cgroup_left(tmp_path / "sys") == 768 * 2**20
    (folder / "memory.max").write_text("max\n")
    assert memory._cgroup_left(tmp_path / "sys") is None
    assert memory.available_bytes() > 0


def test_check_fits_refuses_in_one_line_and_passes_what_fits():
    with pytest.raises(
        MemoryLimitError, match=r"the run needs about 12.0 GB of memory and 8.0 GB is available: do less"
    ):
        check_fits(12 * 2**30, "the run", "do less", available=8 * 2**30)
    check_fits(6 * 2**30, "the run", "do less", available=8 * 2**30)  # must not fire


def test_a_recipe_shape_of_ten_billion_elements_is_one_line(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "N", "M"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "N", "M"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "relu.onnx")
    data = {
        "name": "relu",
        "source": {"onnx": "relu.onnx"},
        "inputs": {"x": {"shape": ["B", 100000, 100000]}},
        "outputs": ["y"],
        "batch_sizes": [1, 3],
        "passes": ["set_batch_size"],
    }
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["apply", str(tmp_path / "big.yaml"), "-o", str(out)]) == 2
    (line,) = error_lines(capsys)
    assert "big.yaml: inputs.x.shape: ['B', 100000, 100000] is 3e+10 elements at batch 3" in line
    assert "check the shape" in line
    assert not out.exists()


def shrink_memory(monkeypatch, available: int) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: available)


def test_a_parity_check_that_would_not_fit_is_refused_before_it_runs(tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path, extra={"batch_sizes": [1, 4096]})
    model = onnx.load(tmp_path / "tiny.onnx")
    big, small = run_bytes(model, 4096), run_bytes(model, 2)
    shrink_memory(monkeypatch, int((big + small) / 2 / memory.USABLE))  # batch 2 fits, 4096 not
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 2
    (line,) = error_lines(capsys)
    assert "the parity check at batch 4096 needs about" in line and "is available" in line
    assert "leave that batch size out (--batch, or batch_sizes in the recipe)" in line
    assert "--no-parity" in line
    assert not out.exists()  # nothing under a final name
    # must not fire: the same machine, the batch sizes that fit
    assert main(["-q", "apply", str(recipe), "-o", str(out), "--batch", "1"]) == 0
    assert (out / "tiny_bs1.onnx").is_file()


def test_bench_refuses_a_batch_size_that_would_not_fit(tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path)
    models = tmp_path / "models"
    assert main(["-q", "apply", str(recipe), "-o", str(models), "--batch", "1"]) == 0
    need = run_bytes(onnx.load(models / "tiny_bs1.onnx"), 4096)
    shrink_memory(monkeypatch, int(need / memory.USABLE / 2))
    capsys.readouterr()
    report = tmp_path / "bench"
    args = ["bench", str(recipe), "--models", str(models), "--runner", "export", "-o", str(report)]
    assert main([*args, "--batch", "1,4096", "--loops", "1", "--warmup", "0"]) == 2
    (line,) = error_lines(capsys)
    assert "--batch 4096: one run of tiny at batch 4096 needs about" in line
    assert "give smaller --batch sizes" in line
    assert not report.exists()
    # must not fire: batch 1 on the same machine
    assert main(["-q", *args, "--batch", "1", "--loops", "1", "--warmup", "0"]) == 0


def test_eval_refuses_a_batch_size_that_would_not_fit(tmp_path, capsys, monkeypatch, shared):
    recipe = task_recipe(tmp_path, layers=2, batch_sizes=(1, 64))
    models = tmp_path / "models"
    assert main(["-q", "apply", str(recipe), "-o", str(models), "--no-parity", "--no-lint"]) == 0
    need = run_bytes(onnx.load(models / "slow_bs64.onnx"))
    shrink_memory(monkeypatch, int(need / memory.USABLE / 2))
    capsys.readouterr()
    speech = shared / "data" / "librispeech-test-other-10spk"
    spoof = shared / "data" / "tts-synthetic-spoof-en"
    report = tmp_path / "report"
    args = ["eval", str(recipe), "--models", str(models), "--runner", "export", "--runner", "graphkit"]
    args += ["--data", f"{speech}=bonafide", "--data", f"{spoof}=spoof", "--limit", "8", "-o", str(report)]
    assert main([*args, "--batch", "1,64"]) == 2
    (line,) = error_lines(capsys)
    assert "--batch 64: one run of slow at batch 64 needs about" in line and "is available" in line
    assert not report.exists()
    # must not fire: batch 1 fits
    assert main(["-q", *args, "--batch", "1"]) == 0
    assert (report / "latest" / "eval.json").is_file()
