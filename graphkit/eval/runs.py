"""Where ``graphkit eval`` and ``graphkit bench`` keep their reports: a folder per run, and ``latest``.

``<out>/<UTC time>/`` (``20250101T120000Z``; ``-2``, ``-3``… where that name is taken) holds one
run's files, and the symlink ``<out>/latest`` names the newest run (relative, so the folder can
be moved or copied). The files are written into a hidden staging folder, which is renamed into
place whole; then ``latest`` is swapped to it with one rename. A reader sees the earlier run or
this one, never half of one; no run overwrites another, and old runs stay until the user removes
them. Hidden ``.graphkit-`` names are what ``graphkit apply`` drops when it re-publishes a folder.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from graphkit.ir.io import current_umask, write_error

log = logging.getLogger("graphkit")

LATEST = "latest"
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY)


@dataclass(frozen=True)
class RunFolder:
    """One run's report folder, the files written in it, and the ``latest`` link (None where it
    could not be made: the file system has no symlinks, or something else stands there)."""

    folder: Path
    files: tuple[str, ...]
    latest: Path | None

    def path(self, name: str) -> Path:
        return self.folder / name

    def describe(self) -> str:
        """``wrote DIR/a.json and DIR/a.png; OUT/latest points to it``."""
        names = [str(self.folder / self.files[0]), *self.files[1:]]
        text = f"wrote {', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else f"wrote {names[0]}"
        return text + (f"; {self.latest} points to it" if self.latest else "")


def stamp(now: datetime | None = None) -> str:
    """The run folder's name: UTC time in ISO 8601 basic format (no ':' for Windows or scp)."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_run(
    out: Path, files: Sequence[str], write: Callable[[Path], None], *, now: datetime | None = None
) -> RunFolder:
    """Call ``write(folder)`` to write ``files`` into a fresh folder, publish it under ``out`` as
    a new run and point ``latest`` at it."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".graphkit-run-", dir=out))
    except OSError as exc:
        raise write_error(out, exc) from None
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # not mkdtemp's 0700: others read reports
        write(staging)
        folder = _place(staging, out, stamp(now))
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # still there only when something failed
    return RunFolder(folder, tuple(files), _point_latest(out, folder.name))


def _place(staging: Path, out: Path, name: str) -> Path:
    for n in range(1, 10_000):
        dst = out / (name if n == 1 else f"{name}-{n}")
        if os.path.lexists(dst):
            continue
        try:
            os.rename(staging, dst)
        except OSError as exc:
            if exc.errno in _TAKEN:  # another run took the name meanwhile
                continue
            raise write_error(dst, exc) from None
        return dst
    raise write_error(out / name, OSError(errno.EEXIST, "every run name of this second is taken"))


def _point_latest(out: Path, name: str) -> Path | None:
    """Swap ``out/latest`` to ``name`` in one rename; a warning, not an error, where it fails
    (the run's own folder is written and named either way)."""
    latest = out / LATEST
    tmp = out / f".graphkit-latest-{os.getpid()}-{name}"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(name, tmp, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        log.warning("%s: not pointed at %s (%s); the run is in %s", latest, name, exc.strerror, out / name)
        return None
    return latest
