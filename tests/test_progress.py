"""Progress of long work: a line before each long step of apply and bench, eval's throttled
rows / elapsed / ETA, and progress columns that line up whatever the pass names and batches.

The helpers of :mod:`graphkit._progress` take a clock: nothing here sleeps (but the heartbeat's
one short wait for its timer thread)."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tiny
import yaml

from graphkit import EXACT, register_pass
from graphkit._progress import Counter, Heartbeat, Stopwatch, eta_seconds, seconds_text
from graphkit.cli import main
from graphkit.eval.evaluate import progress_lines
from graphkit.eval.inputs import EvalData, RowReader, run_batches
from graphkit.pipeline.events import PassEvent, PassRecord
from graphkit.pipeline.instruments import Columns, Progress

TESTS = Path(__file__).resolve().parent
LONG_NAME = "remove_nothing_but_a_long_name"  # 30 characters


@register_pass(LONG_NAME, contract=EXACT)
def remove_nothing_but_a_long_name(graph) -> int:
    """Rewrites nothing; its name is long."""
    return 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("graphkit")]


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What a user of the command sees of the log (``main`` gives "graphkit" its own handler)."""
    err = capsys.readouterr().err.splitlines()
    return [line.removeprefix("graphkit: ") for line in err if line.startswith("graphkit: ")]


def position(lines: list[str], pattern: str) -> int:
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert found, f"no line matches {pattern!r} in:\n" + "\n".join(lines)
    return found[0]


# --- the pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [(0.423, "0.42s"), (8.94, "8.9s"), (35.4, "35s"), (125, "2m05s"), (3725, "1h02m"), (-1, "?")],
)
def test_seconds_read_as_a_person_writes_them(seconds, text):
    assert seconds_text(seconds) == text


def test_eta_is_the_average_rate_so_far():
    assert eta_seconds(0, 10, 5.0) is None  # nothing done: no rate yet
    assert eta_seconds(5, 10, 10.0) == 10.0
    assert eta_seconds(3, 12, 6.0) == 18.0
    assert eta_seconds(10, 10, 7.0) == 0.0
    assert eta_seconds(12, 10, 7.0) == 0.0  # never negative


def test_a_stopwatch_reads_its_clock():
    clock = FakeClock()
    watch = Stopwatch(clock)
    clock.now += 35.4
    assert watch.seconds == pytest.approx(35.4) and str(watch) == "35s"


def run_counter(total: int, step_s: float, **kw) -> list[tuple[int, str]]:
    clock = FakeClock()
    counter = Counter(total, clock=clock, **kw)
    lines = []
    for done in range(1, total + 1):
        clock.now += step_s
        text = counter.update(done)
        if text is not None:
            lines.append((done, text))
    return lines


def test_counter_logs_every_tenth_when_slow_enough_and_always_the_last():
    lines = run_counter(100, 1.0)  # 10 % takes 10 s, more than 5 s: a line per 10 %
    assert [done for done, _ in lines] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert lines[4][1] == "50/100 rows (50%), 50s elapsed, ETA 50s"
    assert lines[-1][1] == "100/100 rows in 1m40s"


def test_counter_logs_at_most_a_line_every_5_seconds():
    lines = run_counter(100, 0.125)  # 10 % takes 1.25 s: held back to one line per 5 s
    assert [done for done, _ in lines] == [40, 80, 100]
    assert lines[-1][1] == "100/100 rows in 12s"


def test_a_slow_counter_still_logs_once_a_minute():
    lines = run_counter(1000, 12.0)  # 10 % would take 20 minutes
    gaps = np.diff([0] + [done for done, _ in lines[:-1]])
    assert set(gaps.tolist()) == {5}  # 5 items = 60 s
    assert lines[-1][0] == 1000


def test_heartbeat_speaks_only_while_the_step_runs(caplog):
    log = logging.getLogger("graphkit")
    beat = threading.Event()

    class Spy(logging.Handler):
        def emit(self, record):
            beat.set()

    spy = Spy()
    log.addHandler(spy)
    try:
        with caplog.at_level(logging.INFO, logger="graphkit"):
            with Heartbeat(log, after=0.01, every=60) as heartbeat:
                heartbeat.start("all  [1/2] simplify")
                assert beat.wait(5)
            stopped = Heartbeat(log, after=0.01)
            stopped.start("never said")
            stopped.stop()
    finally:
        log.removeHandler(spy)
    assert messages(caplog)[0].startswith("all  [1/2] simplify still running after ")
    assert not any("never said" in m for m in messages(caplog))


# --- columns ------------------------------------------------------------------------------------


def pass_event(name: str, index: int, total: int, batch: int | None, sites: int, nodes: tuple[int, int]):
    record = PassRecord(name, {}, "exact", batch, sites, *nodes, seconds=12.5)
    return PassEvent(SimpleNamespace(where="x"), SimpleNamespace(name=name), index, total, None, record)


def test_progress_columns_line_up_for_a_long_pass_name_and_bs128(caplog):
    columns = Columns.fit(["all", "bs1", "bs16", "bs128"], [LONG_NAME, "simplify"], 11)
    cases = [
        ("all", "simplify", 0, 4, None, 1043, (2486, 1443)),
        ("all", LONG_NAME, 9, 11, None, 0, (250, 250)),
        ("bs1", "set_batch_size", 0, 11, 1, 1, (170, 169)),
        ("bs128", LONG_NAME, 10, 11, 128, 12, (12345, 9)),
    ]
    with caplog.at_level(logging.INFO, logger="graphkit"):
        for label, name, index, total, batch, sites, nodes in cases:
            progress = Progress(label, columns)
            event = pass_event(name, index, total, batch, sites, nodes)
            progress.before_pass(event)
            progress.after_pass(event)
    lines = messages(caplog)
    assert len(lines) == 4
    for word in ("[", "sites", "nodes", "checks"):
        assert len({line.index(word) for line in lines}) == 1, (word, lines)
    assert len({line.index("s  checks") for line in lines}) == 1  # the times end in one column
    assert lines[-1].startswith(f"bs128 [11/11] {LONG_NAME}  sites 12 ")


def test_apply_lines_up_a_long_pass_name_and_bs128(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    recipe = write_recipe(tmp_path, tiny_onnx(tmp_path), [f"test_progress:{LONG_NAME}", "set_batch_size"])
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out"), "--batch", "1,16,128"]) == 0
    lines = stderr_lines(capsys)
    passes = [line for line in lines if "sites" in line and "checks" in line]
    assert len(passes) == 4 and any(LONG_NAME in line for line in passes)
    for word in ("sites", "nodes", "checks"):
        assert len({line.index(word) for line in passes}) == 1, (word, passes)
    steps = [line for line in lines if re.match(r"(all|bs\d+) ", line)]
    assert len({len(re.match(r"\S+\s+", line).group()) for line in steps}) == 1  # labels padded


# --- apply: a line before each long step, its time after ---------------------------------------


def tiny_onnx(tmp: Path) -> dict:
    import onnx

    onnx.save(tiny.conv1d_chain(), tmp / "tiny.onnx")
    return {
        "source": {"onnx": "tiny.onnx"},
        "inputs": {"x": {"shape": ["B", 4, 16]}},
        "outputs": ["y", "pooled"],
    }


def write_recipe(tmp: Path, source: dict, passes: list[str]) -> Path:
    data = {
        "name": "tiny",
        **source,
        "batch_sizes": [1, 2],
        "passes": passes,
        "atc": {"soc_version": "Ascend310P3"},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build_tiny_torch(weights=None, *, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()).eval()


def test_apply_announces_the_export_and_each_parity_check_and_times_them(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from graphkit.models import BUILTIN_MODELS, ModelInfo

    info = ModelInfo("test_progress:build_tiny_torch", {"x": (("B", 4), "float32")}, ("y",), "tiny")
    monkeypatch.setitem(BUILTIN_MODELS, "tiny_torch", info)
    source = {"source": {"model": "tiny_torch", "opset": 17}, "inputs": {"x": {"shape": ["B", 4]}}}
    recipe = write_recipe(tmp_path, source, ["remove_identity", "set_batch_size"])
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 0
    lines = stderr_lines(capsys)
    order = [
        r"^exporting to ONNX",
        r"^exported in \S+s \(opset 17, \d+ nodes\)",
        r"^parity reference: .* \.\.\.$",
        r"^parity reference ready in \S+s",
        r"^all +\[1/1\] remove_identity .* checks",
        r"^bs1 +parity check of the final model on 1 row \.\.\.$",
        r"^bs1 +parity ok in \S+s: max\|Δ\|",
        r"^bs1 +emulating force_fp16 on CPU \.\.\.$",
        r"^bs1 +emulated force_fp16 in \S+s: ",
        r"^bs1 +written",
        r"^bs2 +parity check of the final model on 2 rows \.\.\.$",
        r"^bs2 +parity ok in ",
    ]
    found = [position(lines, p) for p in order]
    assert found == sorted(found), lines


# --- bench and eval -----------------------------------------------------------------------------


class Doubler:
    """A runner: y = 2x, counting its runs."""

    def __init__(self) -> None:
        self.runs = 0

    def infer(self, feeds, key=None):
        self.runs += 1
        return {"y": 2 * feeds["x"]}

    def device_times_ms(self):
        return []


def eval_data(n_rows: int) -> EvalData:
    def extract(i: int) -> np.ndarray:
        return np.full((1, 2), i, np.float32)

    def reader(batch: int) -> RowReader:
        return RowReader(extract, n_rows, 1, (2,), "float32", window=8, workers=1)

    ids = [f"u{i}" for i in range(n_rows)]
    return EvalData(
        "spoof", ids, [None] * n_rows, ["bonafide"] * n_rows, [], np.arange(n_rows), reader, n_rows
    )


def test_eval_progress_is_throttled_in_rows_and_ends_with_the_last(caplog):
    clock = FakeClock()
    report = progress_lines("eval [3/14] graphkit bs16", 250, clock=clock)
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        clock.now += 1.5  # 16 rows take 1.5 s: 10 % in 2.3 s, held to one line per 5 s
        report(done, total)

    with caplog.at_level(logging.INFO, logger="graphkit"):
        rows = run_batches(Doubler(), eval_data(250), 16, "x", "y", progress)
    assert rows.shape == (250, 2) and rows[-1, 0] == 2 * 249  # the padding of the last batch dropped
    assert seen[-1] == (250, 250) and [d for d, _ in seen[:2]] == [16, 32]  # rows, not batches
    lines = messages(caplog)
    assert 3 <= len(lines) <= 5  # 16 batches in 24 s
    assert all(line.startswith("eval [3/14] graphkit bs16  ") for line in lines)
    assert re.search(r"\d+/250 rows \(\d+%\), \S+ elapsed, ETA \S+$", lines[0])
    assert lines[-1] == "eval [3/14] graphkit bs16  250/250 rows in 24s"


def test_bench_announces_each_measurement_and_times_it(tmp_path, capsys):
    recipe = write_recipe(tmp_path, tiny_onnx(tmp_path), ["set_batch_size"])
    out = tmp_path / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out), "--batch", "1,128", "--no-emulate"]) == 0
    capsys.readouterr()
    args = [
        "bench",
        str(recipe),
        "--models",
        str(out),
        "--batch",
        "1,128",
        "--loops",
        "2",
        "-o",
        str(tmp_path / "b"),
    ]
    assert main(args) == 0
    lines = [m for m in stderr_lines(capsys) if m.startswith("bench ")]
    assert len(lines) == 8  # export and graphkit at two batch sizes: a line before, one after
    assert lines[0] == "bench bs1    export    2 warmup + 2 timed runs ..."
    assert re.fullmatch(r"bench bs128  graphkit +\d+\.\d\d ms +\d+\.\d\d rows/s  \(in \S+s\)", lines[-1])
    assert len({line.index(" ms") for line in lines[1::2]}) == 1  # the figures line up
