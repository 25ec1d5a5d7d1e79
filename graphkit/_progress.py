"""Progress of long work, as text for the "graphkit" logger: elapsed times, throttled counts with
an ETA, and a heartbeat for a step that runs long.

Every helper takes its clock, so that the tests drive time instead of sleeping. Nothing here
logs by itself except :class:`Heartbeat`, whose whole point is a line while the caller is busy.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]  # seconds, monotonic


def seconds_text(seconds: float) -> str:
    """A duration for a person: ``0.42s``, ``8.9s``, ``35s``, ``2m05s``, ``1h02m``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def eta_seconds(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left at the average rate so far (``elapsed`` for ``done`` of ``total``); None
    before anything is done, when nothing tells the rate yet."""
    if done <= 0 or total <= 0:
        return None
    return elapsed * max(0.0, total - done) / done


class Stopwatch:
    """Time since it was made: ``str(watch)`` is :func:`seconds_text` of it."""

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._start = clock()

    @property
    def seconds(self) -> float:
        return self._clock() - self._start

    def __str__(self) -> str:
        return seconds_text(self.seconds)


class Counter:
    """Throttled progress of ``total`` items (rows, batches): :meth:`update` says what to log.

    A line is due when at least ``every_s`` seconds passed since the last one and either the
    count moved on by ``every_fraction`` of the total or ``quiet_s`` seconds passed (a long run
    still shows it is alive); the last item always gets its line. So a run logs at most one line
    every ``every_s`` seconds and, unless it is slow, about ``1 / every_fraction`` in all.
    """

    def __init__(
        self,
        total: int,
        unit: str = "rows",
        *,
        clock: Clock = time.monotonic,
        every_s: float = 5.0,
        every_fraction: float = 0.1,
        quiet_s: float = 60.0,
    ) -> None:
        self.total, self.unit = total, unit
        self.every_s, self.every_fraction, self.quiet_s = every_s, every_fraction, quiet_s
        self._clock = clock
        self._start = self._last_time = clock()
        self._last_done = 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def update(self, done: int) -> str | None:
        """The text for ``done`` of the total, or None while no line is due."""
        now = self._clock()
        final = done >= self.total
        since = now - self._last_time
        moved = (done - self._last_done) / self.total if self.total else 1.0
        if not final and (since < self.every_s or (moved < self.every_fraction and since < self.quiet_s)):
            return None
        self._last_time, self._last_done = now, done
        elapsed = now - self._start
        if final:
            return f"{done}/{self.total} {self.unit} in {seconds_text(elapsed)}"
        eta = eta_seconds(done, self.total, elapsed)
        left = f", ETA {seconds_text(eta)}" if eta is not None else ""
        share = 100 * done / self.total
        return f"{done}/{self.total} {self.unit} ({share:.0f}%), {seconds_text(elapsed)} elapsed{left}"


class Heartbeat:
    """Logs ``what`` with the time so far when a step is still running ``after`` seconds after
    :meth:`start`, then every ``every`` seconds, until :meth:`stop` (or the next start).

    A daemon timer thread does the logging: the caller is busy in the step. Use it as a context
    manager, or stop it in a ``finally``, so that a step that raises says nothing more.
    """

    def __init__(self, log: logging.Logger, *, after: float = 10.0, every: float = 30.0) -> None:
        self.log, self.after, self.every = log, after, every
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._generation = 0  # a timer of an earlier start or a stop says nothing
        self._what = ""
        self._watch = Stopwatch()

    def start(self, what: str) -> None:
        with self._lock:
            self._cancel()
            self._what, self._watch = what, Stopwatch()
            self._arm(self.after)

    def stop(self) -> None:
        with self._lock:
            self._cancel()

    def _arm(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._beat, args=(self._generation,))
        self._timer.daemon = True
        self._timer.start()

    def _beat(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # stopped, or restarted for another step, meanwhile
            self.log.info("%s still running after %s ...", self._what, self._watch)
            self._arm(self.every)

    def _cancel(self) -> None:
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
