import copy
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny

from graphkit import testing
from graphkit.errors import PassError
from graphkit.ir.graph import export_model, import_graph
from graphkit.passes import _onnxsim_worker as worker


def test_folds_shape_plumbing_and_keeps_numbers():
    model = tiny.with_shape_plumbing()
    out, result = testing.apply_pass(model, "simplify")
    assert result.sites >= 3
    assert "Shape" not in {n.op_type for n in out.graph.node}
    x = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(testing.run(out, {"x": x})[0], testing.run(model, {"x": x})[0])
    assert out.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "B"  # batch stays dynamic


def test_skip_constant_folding_keeps_plumbing():
    out, _ = testing.apply_pass(
        tiny.with_shape_plumbing(), "simplify", skip_constant_folding=True, perform_optimization=False
    )
    assert "Shape" in {n.op_type for n in out.graph.node}


# onnxsim runs in a child process (graphkit.passes._onnxsim_worker): crashes, errors, output.


@pytest.fixture
def planted(monkeypatch, tmp_path):
    """Plant a fault in the child (its environment variable, then a fresh child that sees it);
    the parent's temporary files go to ``tmp_path``. The next test gets a child without it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def plant(var: str, value: str) -> None:
        monkeypatch.setenv(var, value)
        worker.stop()

    yield plant
    worker.stop()  # before monkeypatch's own teardown unsets the variable


@pytest.fixture
def ctrl_c():
    """Python's own SIGINT handler for the test. A pytest started with SIGINT ignored (a
    background job of a non-interactive shell) has none: the SIGINT below would then be lost and
    the interrupted call would wait for the stopped child for ever."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_crash_in_onnxsim_is_a_pass_error_naming_the_signal(planted, tmp_path):
    planted(worker.CRASH_VAR, "SIGSEGV")
    with pytest.raises(
        PassError, match=r"onnxsim crashed \(signal 11, SIGSEGV\) on this model; skip"
    ) as info:
        testing.apply_pass(tiny.with_shape_plumbing(), "simplify")
    assert "skip_constant_folding" in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the call's folder is gone


def test_an_onnxsim_exception_shows_its_full_text_and_its_output_is_logged(planted, tmp_path, caplog, capfd):
    planted(worker.RAISE_VAR, "[ONNXRuntimeError] : 1 : FAIL : bad Loop\n\n==> Context: Bad node spec")
    with caplog.at_level(logging.DEBUG, logger="graphkit.passes.simplify"):
        with pytest.raises(PassError) as info:
            # one attempt: each retry would start a child that exits after the planted error
            # (seconds of importing onnxsim each); the retries: test_when_every_retry_fails_...
            testing.apply_pass(tiny.with_shape_plumbing(), "simplify", perform_optimization=False)
    want = (
        "onnxsim failed: RuntimeError: [ONNXRuntimeError] : 1 : FAIL : bad Loop | ==> Context: Bad node spec"
    )
    assert str(info.value).endswith(want)
    assert "==> Context: Bad node spec" in caplog.text  # what the child printed, at debug level
    assert capfd.readouterr() == ("", "")  # and nothing on our stdout or stderr
    assert list(tmp_path.iterdir()) == []


def test_the_child_is_replaced_after_a_crash(planted, monkeypatch):
    planted(worker.CRASH_VAR, "SIGABRT")
    with pytest.raises(PassError, match=r"signal 6, SIGABRT"):
        testing.apply_pass(tiny.with_shape_plumbing(), "simplify")
    monkeypatch.delenv(worker.CRASH_VAR)
    out, result = testing.apply_pass(tiny.with_shape_plumbing(), "simplify")
    assert result.sites >= 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the child's state in /proc")
def test_an_interrupted_call_kills_the_child_and_removes_its_folder(planted, tmp_path, ctrl_c):
    planted(worker.CRASH_VAR, "SIGSTOP")  # the child stops: a call that never returns
    worker.warm_up()
    child = worker._CHILD
    assert child is not None

    def interrupt() -> None:
        stat = Path(f"/proc/{child.process.pid}/stat")
        deadline = time.monotonic() + 60
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C, mid-call

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        testing.apply_pass(tiny.with_shape_plumbing(), "simplify")
    assert child.process.returncode == -signal.SIGKILL  # killed and reaped: no orphan
    assert worker._CHILD is None
    assert list(tmp_path.iterdir()) == []


OPTIONS = {
    "check_n": 0,
    "perform_optimization": True,
    "skip_fuse_bn": False,
    "skipped_optimizers": None,
    "skip_constant_folding": False,
    "skip_shape_inference": False,
    "include_subgraph": False,
    "tensor_size_threshold": "1.5GB",
}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"skip_fuse_bn": True, "skipped_optimizers": ["fuse_bn_into_conv"]},
        {"perform_optimization": False},
    ],
)
def test_the_result_is_byte_identical_to_an_in_process_call(options):
    onnxsim = pytest.importorskip("onnxsim")
    model = testing.build(
        """g (float[B,3,8] x) => (float[B,4,8] y) {
            c = Conv<pads=[1,1]>(x, w)
            n = BatchNormalization(c, scale, bias, mean, var)
            s = Shape(n)
            t = Concat<axis=0>(s, one)
            r = Reshape(n, t)
            y = Squeeze(r, minus)
        }""",
        w=testing.weights(4, 3, 3),
        scale=testing.weights(4, seed=1),
        bias=testing.weights(4, seed=2),
        mean=testing.weights(4, seed=3),
        var=np.abs(testing.weights(4, seed=4)) + 0.5,
        one=np.array([1], np.int64),
        minus=np.array([-1], np.int64),
    )
    data = export_model(import_graph(model)).SerializeToString()
    options = {**OPTIONS, **options}
    # fresh lists, as the pass passes them: onnxsim appends to skipped_optimizers in place
    in_process, _ = onnxsim.simplify(onnx.ModelProto.FromString(data), **copy.deepcopy(options))
    assert worker.simplify_in_child(data, copy.deepcopy(options)) == in_process.SerializeToString()


def test_an_onnxsim_failure_is_retried_without_its_optimizer(monkeypatch, caplog):
    """onnxsim's optimizer breaks some models with If bodies (silero VAD: 'must be topologically
    sorted'); the pass retries without its If optimizer, then without any optimizer."""
    import graphkit.passes.simplify as mod

    calls = []
    real = mod.simplify_in_child

    def flaky(data, options):
        calls.append((options["perform_optimization"], options["skipped_optimizers"]))
        if options["perform_optimization"]:
            raise PassError("onnxsim failed: RuntimeError: Nodes in a graph must be topologically sorted")
        return real(data, options)

    monkeypatch.setattr(mod, "simplify_in_child", flaky)
    model = tiny.with_shape_plumbing()
    out, _ = testing.apply_pass(model, "simplify")
    assert calls == [(True, None), (True, ["eliminate_if_with_const_cond"]), (False, None)]
    assert "simplified without its optimizer (perform_optimization: false)" in caplog.text
    testing.assert_same_numbers(model, out)


def test_when_every_retry_fails_the_first_error_is_raised(monkeypatch):
    import graphkit.passes.simplify as mod

    calls = []

    def failing(data, options):
        calls.append(options["perform_optimization"])
        raise PassError(f"onnxsim failed: RuntimeError: attempt {len(calls)}")

    monkeypatch.setattr(mod, "simplify_in_child", failing)
    with pytest.raises(PassError, match=r"onnxsim failed: RuntimeError: attempt 1$"):
        testing.apply_pass(tiny.with_shape_plumbing(), "simplify")
    assert calls == [True, True, False]
