"""Sweep many models: one worker process per core, a time limit per model.

:func:`sweep` runs :func:`graphkit.testing.cases.run_case` on every case in worker processes
and yields the :class:`~graphkit.testing.cases.Outcome` of each as it finishes; a worker that
dies (a segfault, an abort in native code) or runs out of time becomes that case's outcome.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any

from graphkit.passes._infra import PassRegistry
from graphkit.passes._onnxsim_worker import warm_up
from graphkit.testing.cases import CRASH, TIMEOUT, Case, Outcome, run_case

STARTUP_S = 180.0  # a worker's imports (onnxsim brings torch), on a loaded machine


_READY = "ready"


def sweep(
    cases: Sequence[Case], *, workers: int = 2, timeout: float = 60.0, dynamic_batch: bool = True
) -> Iterator[Outcome]:
    """Run every case in worker processes; yield outcomes as they finish (not in order).

    A case that takes longer than ``timeout`` seconds (a worker's start-up excluded) is a
    ``timeout``: its worker is killed and replaced. A worker that dies (a segfault, an abort
    in native code) makes its case a ``crash`` with the end of what it wrote. What native code
    prints goes to a log file per worker, not to the console. A worker that cannot start at
    all raises RuntimeError: that is the machine's problem, not a model's.
    """
    pending = list(reversed(cases))
    with tempfile.TemporaryDirectory(prefix="graphkit-sweep-") as tmp:
        pool = [_Worker(Path(tmp) / f"worker{i}.log", dynamic_batch) for i in range(max(1, workers))]
        try:
            while pending or any(w.case is not None for w in pool):
                for w in pool:
                    if w.ready and w.case is None and pending:
                        w.submit(pending.pop())
                waiting = [w for w in pool if not w.ready or w.case is not None]
                deadline = min(w.deadline(timeout) for w in waiting)
                ready = mp_connection.wait(
                    [x for w in waiting for x in (w.conn, w.process.sentinel)],
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                for w in waiting:
                    outcome = w.poll(ready, timeout)
                    if outcome is not None:
                        yield outcome
        finally:
            for w in pool:
                w.stop()


class _Worker:
    """One worker process: starting (not ``ready``), idle, or busy with ``case`` since ``since``."""

    def __init__(self, log_path: Path, dynamic_batch: bool) -> None:
        self.log_path = log_path
        self.dynamic_batch = dynamic_batch
        self.case: Case | None = None
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no state (threads, sessions) inherited
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, str(self.log_path), self.dynamic_batch), daemon=True
        )
        self.process.start()
        child.close()
        self.ready, self.since = False, time.monotonic()

    def deadline(self, timeout: float) -> float:
        return self.since + (timeout if self.ready else STARTUP_S)

    def submit(self, case: Case) -> None:
        self.case, self.since = case, time.monotonic()
        self.conn.send(case)

    def poll(self, ready: Sequence[Any], timeout: float) -> Outcome | None:
        """The outcome of the current case if it is done, has died or has run out of time."""
        message = None
        if self.conn in ready:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                pass
        gone = message is None and (self.conn in ready or self.process.sentinel in ready)
        late = time.monotonic() >= self.deadline(timeout)
        if not self.ready:
            if message == _READY:
                self.ready = True
            elif gone or late:
                raise RuntimeError(f"a sweep worker did not start: {_tail(self.log_path) or 'no output'}")
            return None
        assert self.case is not None
        if isinstance(message, Outcome):
            outcome = message
        elif gone:
            self.process.join(5)
            detail = f"the worker died (exit code {self.process.exitcode})"
            outcome = Outcome(self.case.name, CRASH, detail, trace=_tail(self.log_path))
        elif late:
            outcome = Outcome(self.case.name, TIMEOUT, f"no result after {timeout:g} s", seconds=timeout)
        else:
            return None
        if gone or late:
            self.stop()
            self._start()
        self.case = None
        return outcome

    def stop(self) -> None:
        if self.process.is_alive() and self.ready and self.case is None:
            with contextlib.suppress(OSError):
                self.conn.send(None)  # asks it to exit
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _serve(conn: Any, log_path: str, dynamic_batch: bool) -> None:
    """A worker's loop: receive a case, send its outcome, until told to stop (None)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)  # native libraries print to the descriptors, not to sys.stdout
    os.dup2(fd, 2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    registry = PassRegistry()
    import onnxruntime  # noqa: F401 - imported now, outside the first case's time limit

    warm_up()  # simplify's onnxsim child (it imports onnxsim): started outside the limit too

    conn.send(_READY)
    while True:
        case = conn.recv()
        if case is None:
            return
        os.ftruncate(fd, 0)  # the log holds what the current case printed
        conn.send(run_case(case, dynamic_batch=dynamic_batch, registry=registry))


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace")
    except OSError:
        return ""
