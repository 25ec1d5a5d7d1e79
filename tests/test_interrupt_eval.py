"""Ctrl-C during eval and preprocess exits at once, and features are read with a bounded look-ahead.

Eval and preprocess extract features in background threads (graphkit.eval.inputs.RowReader):
at most a window of utterances ahead of the rows read, in daemon threads nothing waits for at
exit; an onnxruntime run in progress is told to stop (graphkit.ir.ort.run_interruptible).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from graphkit.errors import DataError
from graphkit.eval.inputs import RowReader

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SAMPLES = 64600  # the waveform_64600 features' row


def slow_model(layers: int) -> onnx.ModelProto:
    """input [B, 64600] -> [B, 323, 200] -> ``layers`` x (MatMul 200x200, Tanh) -> mean -> logits
    [B, 2]: an anti-spoofing model whose one run takes seconds where ``layers`` is large."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array([0, 323, 200], np.int64), "shape"),
        numpy_helper.from_array((rng.standard_normal((200, 200)) / 20).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((200, 2)).astype(np.float32), "w2"),
    ]
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["h0"])]
    for k in range(layers):
        nodes += [
            helper.make_node("MatMul", [f"h{k}", "w"], [f"m{k}"]),
            helper.make_node("Tanh", [f"m{k}"], [f"h{k + 1}"]),
        ]
    nodes += [
        helper.make_node("ReduceMean", [f"h{layers}"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", SAMPLES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def task_recipe(tmp: Path, layers: int = 2, batch_sizes: tuple[int, ...] = (1, 4)) -> Path:
    """An anti-spoofing recipe over :func:`slow_model`, its model beside it."""
    onnx.save(slow_model(layers), tmp / "slow.onnx")
    data = {
        "name": "slow",
        "source": {"onnx": "slow.onnx"},
        "inputs": {"input": {"shape": ["B", SAMPLES], "range": [-0.1, 0.1]}},
        "outputs": ["logits"],
        "batch_sizes": list(batch_sizes),
        "passes": ["set_batch_size"],
        "task": {"kind": "anti_spoofing", "features": "waveform_64600", "output": "logits", "score_index": 1},
    }
    recipe = tmp / "slow.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    return recipe


def linked_dataset(folder: Path, source: Path, n_files: int) -> Path:
    """``n_files`` links to the real files of ``source`` under new names: a large dataset."""
    real = sorted(source.rglob("*.flac")) + sorted(source.rglob("*.wav"))
    folder.mkdir(parents=True)
    for k in range(n_files):
        (folder / f"u{k:05d}{real[k % len(real)].suffix}").symlink_to(real[k % len(real)])
    return folder


def graphkit(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    cmd = [sys.executable, "-m", "graphkit", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_after(
    proc: subprocess.Popen, needle: str, wait: float, *, twice: bool = False
) -> tuple[float, str]:
    """SIGINT ``wait`` s after ``needle`` appears on stderr (twice: again 0.2 s later); the
    seconds from the first signal to the exit, and the whole of stderr."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            break
    assert proc.poll() is None, "".join(seen)
    time.sleep(wait)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    if twice:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    return time.monotonic() - start, "".join(seen) + rest


def assert_interrupted(proc: subprocess.Popen, err: str) -> None:
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("graphkit: interrupted")]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err


@pytest.mark.parametrize("twice", [False, True])
def test_ctrl_c_during_preprocess_exits_at_once_and_writes_nothing(tmp_path, shared, twice):
    speech = shared / "data" / "librispeech-test-other-10spk"
    data = linked_dataset(tmp_path / "bonafide", speech, 3000)
    out = tmp_path / "batches"
    args = ["preprocess", str(ROOT / "recipes" / "aasist.yaml"), "--data", f"{data}=bonafide"]
    proc = graphkit([*args, "--batch", "64", "-o", str(out)], tmp_path)
    seconds, err = interrupt_after(proc, "3000 utterances", 1.0, twice=twice)
    assert_interrupted(proc, err)
    assert "files are renamed into place only when a run completes" in err
    assert seconds < 5, f"{seconds:.1f} s from Ctrl-C to exit"  # the issue asks 1 s; CI may be loaded
    assert not out.exists()  # nothing under the final name, no .bin, no index.json


@pytest.mark.parametrize("twice", [False, True])
def test_ctrl_c_in_the_middle_of_an_onnxruntime_run_exits_at_once(tmp_path, shared, twice):
    """Each batch of this model takes many seconds on onnxruntime: the signal lands inside a run."""
    recipe = task_recipe(tmp_path, layers=1500)
    speech = shared / "data" / "librispeech-test-other-10spk"
    spoof = shared / "data" / "tts-synthetic-spoof-en"
    args = ["eval", str(recipe), "--runner", "export", "--data", f"{speech}=bonafide"]
    proc = graphkit([*args, "--data", f"{spoof}=spoof", "-o", str(tmp_path / "report")], tmp_path)
    seconds, err = interrupt_after(proc, "eval slow:", 1.5, twice=twice)
    assert_interrupted(proc, err)
    assert "the report is written only after every run completes" in err
    assert not re.search(r"\d+/\d+ rows", err), err  # no progress line: the run itself was stopped
    assert seconds < 5, f"{seconds:.1f} s from Ctrl-C to exit"
    assert not (tmp_path / "report").exists()


def rows_of(i: int, crops: int) -> np.ndarray:
    return np.full((crops, 3), i, np.float32) + np.arange(crops, dtype=np.float32)[:, None] / 10


class Recorder:
    """An extraction that records, at each call, how many utterances have been extracted beyond
    the lowest one the reader still holds (the one being read)."""

    def __init__(self, crops: int) -> None:
        self.crops = crops
        self.reader: RowReader | None = None
        self.extracted: list[int] = []
        self.ahead: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, i: int) -> np.ndarray:
        assert self.reader is not None
        with self.lock:
            self.extracted.append(i)
            self.ahead.append(len(self.extracted) - self.reader._low)
        return rows_of(i, self.crops)


@pytest.mark.parametrize(
    ("n_utts", "crops", "batch", "window"), [(500, 1, 8, 16), (97, 3, 5, 4), (10, 2, 64, 3)]
)
def test_the_look_ahead_never_holds_more_than_its_window(n_utts, crops, batch, window):
    from graphkit.data.preprocess import make_batches

    record = Recorder(crops)
    batches = make_batches(n_utts * crops, batch)
    got = []
    with RowReader(record, n_utts, crops, (3,), "float32", window, workers=2) as reader:
        record.reader = reader
        for b in batches:
            got.append(reader.rows(b.items))
            assert len(reader._held) <= window
            time.sleep(0.001)  # let the workers run ahead as far as they may
    assert reader.peak <= window
    assert max(record.ahead) <= window  # extracted but not yet read: never more than the window
    assert sorted(record.extracted) == list(range(n_utts))  # each once, none skipped
    # the rows, in order, as the extractor gives them (padding repeats the last row)
    expected = np.concatenate([rows_of(u, crops) for u in range(n_utts)])
    flat = np.concatenate([r[: b.valid] for r, b in zip(got, batches)])
    assert flat.tobytes() == expected.tobytes()
    assert all(
        np.array_equal(r[b.valid :], np.repeat(r[b.valid - 1 : b.valid], len(r) - b.valid, 0))
        for r, b in zip(got, batches)
    )


def test_a_reader_reads_forward_only_and_raises_an_extraction_error_in_the_caller():
    def extract(i: int) -> np.ndarray:
        if i == 5:
            raise DataError("u5.flac: unreadable")
        return np.zeros((1, 2), np.float32)

    with RowReader(extract, 10, 1, (2,), "float32", 4, workers=2) as reader:
        reader.rows([0, 1, 2])
        with pytest.raises(ValueError, match="forward only"):
            reader.rows([1])
        with pytest.raises(DataError, match="u5.flac: unreadable"):
            reader.rows([3, 4, 5])


def test_a_feature_of_the_wrong_shape_is_refused_not_broadcast():
    with RowReader(lambda i: np.zeros((1, 200), np.float32), 3, 1, (80, 200), "float32", 2, 1) as reader:
        with pytest.raises(DataError, match=r"features shaped \(200,\), the input's rows \(80, 200\)"):
            reader.rows([0])


def test_closing_a_reader_cancels_what_is_queued():
    started = threading.Event()
    release = threading.Event()

    def extract(i: int) -> np.ndarray:
        started.set()
        release.wait(10)
        return np.zeros((1, 1), np.float32)

    reader = RowReader(extract, 1000, 1, (1,), "float32", 50, workers=1)
    reader._fill()
    started.wait(10)
    held = list(reader._held.values())
    reader.close()
    release.set()
    assert sum(f.cancelled() for f in held) == len(held) - 1  # all but the running one
