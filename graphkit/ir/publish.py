"""Publishing a folder of results whole: staged beside it, swapped in at once, under a lock.

A command that writes a folder (apply's output folder, preprocess's batches) builds the whole
result in a staging folder beside the target (``.<name>.graphkit-stage-*``), then swaps it in
with one rename (Linux's ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, undone by the
next run if a crash falls between them). A reader sees the earlier result or the new one, never
a mix, and a run that fails or is killed changes nothing under a final name.

* Files that no earlier graphkit run wrote into the folder (compiled ``.om`` files, eval and
  bench reports, your own notes) are carried into the new folder, as hard links (copies where
  the file system has none). Files the earlier run wrote and this one does not (another batch
  size, ``golden/``, ``passes/``) go with it: ``owned`` tells which those are.
* A lock beside the folder (``.<name>.graphkit-lock``, left in place: removing it would race
  with a run that has just opened it) keeps two runs from writing one folder at once; the
  second is refused at its start with the first one's pid. Staging folders of a killed run are
  removed by the next run that takes the lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from graphkit.errors import OutputError, UsageError
from graphkit.ir.io import current_umask

log = logging.getLogger("graphkit")

LOCK = ".graphkit-lock"
STAGE = ".graphkit-stage-"
OLD = ".graphkit-old-"  # the earlier result, moved aside for the two-rename swap

Owned = Callable[[str], bool]  # relative path (posix) in the earlier result -> written by graphkit


def sibling_key(target: Path) -> str:
    """The hidden siblings' stem: the folder's name, shortened with a hash where the suffixes
    would pass the 255-byte name limit."""
    name = target.name
    if len(name.encode()) <= 160:
        return f".{name}"
    return f".{name.encode()[:100].decode(errors='ignore')}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"


class ResultFolder:
    """``with ResultFolder(out, owned_by=...) as rf:`` write into ``rf.staging``, then
    ``rf.publish()``. Leaving the block without publishing removes the staging folder and
    leaves ``out`` as it was."""

    def __init__(
        self,
        target: str | Path,
        *,
        owned_by: Callable[[Path], Owned],
        marker: str,
        command: str,
        flag: str = "-o",
    ) -> None:
        self.given = Path(target)
        self.marker = marker  # the file only a graphkit result folder has (its manifest)
        self.owned_by = owned_by
        self.command = command
        self.flag = flag
        self.target = self.given
        self.staging = self.given
        self._lock: int | None = None

    def __enter__(self) -> ResultFolder:
        self.target = _check_target(self.given, self.flag, self.marker)
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{self.flag} {self.given}: cannot create {parent}: {exc.strerror}") from None
        self._lock = take_lock(self.target, self.command, flag=self.flag, wait=False)
        try:
            self._recover()
            prefix = f"{sibling_key(self.target)}{STAGE}{os.getpid()}-"
            self.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            # mkdtemp's 0700 would survive the swap; an existing folder keeps its own mode
            mode = stat.S_IMODE(self.target.stat().st_mode) if self.target.is_dir() else None
            os.chmod(self.staging, 0o777 & ~current_umask() if mode is None else mode)
        except OSError as exc:
            self._release()
            why = exc.strerror or exc
            raise UsageError(f"{self.flag} {self.given}: cannot stage beside it in {parent}: {why}") from None
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            if self.staging.exists() and self.staging != self.target:
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._release()
        staged = str(self.staging)
        if isinstance(exc, OutputError) and staged in str(exc):  # name the file where it would go
            raise OutputError(str(exc).replace(staged, str(self.given))) from None

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def _recover(self) -> None:
        """Undo what a killed run left: a displaced earlier result comes back where the target is
        missing (killed between the two renames); staging folders and leftovers go."""
        key = sibling_key(self.target)
        for item in sorted(self.target.parent.iterdir()):
            if item.name.startswith(f"{key}{OLD}"):
                if not self.target.exists():
                    os.rename(item, self.target)
                    log.warning("%s: restored the result a killed run had moved aside", self.given)
                else:
                    shutil.rmtree(item, ignore_errors=True)
            elif item.name.startswith(f"{key}{STAGE}"):
                shutil.rmtree(item, ignore_errors=True)
                log.info("removed %s, left by a killed %s", item, self.command)

    def publish(self) -> list[Path]:
        """Swap the staged result in; returns the published files. SIGINT and SIGTERM wait
        until the swap is done."""
        with _signals_blocked():
            earlier: Owned = self.owned_by(self.target) if self.target.is_dir() else (lambda rel: False)
            if self.target.is_dir():
                carried = _carry(self.target, self.staging, earlier, self.given)
                if carried:
                    log.info("kept %d file(s) of %s that graphkit did not write", carried, self.given)
            files = sorted(p for p in self.staging.rglob("*") if not p.is_dir())
            _swap(self.staging, self.target)
        return [self.given / p.relative_to(self.staging) for p in files]


def _check_target(given: Path, flag: str, marker: str) -> Path:
    if given.exists() and not given.is_dir():
        raise UsageError(f"{flag} {given}: exists and is not a folder")
    if given.is_dir() and not (given / marker).is_file():
        entries = [p.name for p in given.iterdir() if not p.name.startswith(".graphkit-")]
        if entries:  # never swap away (or hard-link) a folder of unrelated files, such as $HOME
            raise UsageError(
                f"{flag} {given}: holds files but no {marker}, so it is not a graphkit result "
                "folder; graphkit replaces its output folder whole: name a new or empty folder"
            )
    for parent in given.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{flag} {given}: {parent} is a file, not a folder")
    target = given.resolve()  # a symlinked output folder: the folder it points at is replaced
    if Path.cwd().resolve().is_relative_to(target):
        raise UsageError(
            f"{flag} {given}: is the current folder or holds it; graphkit replaces the output "
            "folder whole, so name a folder below the current one"
        )
    return target


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    blocked = {signal.SIGINT, signal.SIGTERM}
    masked = threading.current_thread() is threading.main_thread()
    if masked:
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        if masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


def take_lock(target: Path, command: str, *, flag: str = "-o", wait: bool) -> int | None:
    """Hold the lock of folder ``target`` (an open descriptor; close it to release). ``wait``:
    block until the holder is done (a report written into the folder), else refuse at once.
    None where the file system has no locks (logged)."""
    path = target.parent / f"{sibling_key(target)}{LOCK}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise UsageError(f"{flag} {target}: cannot create its lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        if not wait:
            os.close(fd)
            raise UsageError(
                f"{flag} {target}: another graphkit run ({holder}) is writing this folder; "
                "wait for it to finish or choose another folder"
            ) from None
        log.info("waiting for %s to finish writing %s", holder, target)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            os.close(fd)
            raise
        log.warning(
            "%s: the file system has no locks; two runs into this folder would not be kept apart", target
        )
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} graphkit {command}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, what = text.partition(" ")
    return f"{what} pid {pid}" if pid.isdigit() else "a graphkit run"


@contextlib.contextmanager
def folder_lock(target: Path, command: str) -> Iterator[None]:
    """Wait for and hold ``target``'s lock while writing into it in place (eval's reports)."""
    fd = take_lock(target, command, wait=True)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _carry(target: Path, staging: Path, earlier: Owned, shown: Path) -> int:
    """Link every entry of ``target`` that graphkit did not write into ``staging``; a folder
    or a symlink where the new result has a file (or the reverse) is refused, not dropped."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(target, onerror=_raise):
        here = Path(dirpath)
        rel_dir = here.relative_to(target)
        links = [d for d in dirnames if (here / d).is_symlink()]
        # not followed; an older graphkit's staging folders inside the target are dropped
        dirnames[:] = [d for d in dirnames if d not in links and not d.startswith(".graphkit-")]
        for d in dirnames:
            rel = rel_dir / d
            if not earlier(rel.as_posix()):
                _clash(staging / rel, True, shown / rel)
                (staging / rel).mkdir(parents=True, exist_ok=True)
        for name in [*filenames, *links]:
            rel = rel_dir / name
            if earlier(rel.as_posix()) or name.startswith(".graphkit-") or name.endswith(".part"):
                continue
            src, dst = here / name, staging / rel
            if _clash(dst, False, shown / rel):
                continue  # a file at a name the new result writes: replaced, as apply always did
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                try:
                    os.link(src, dst)
                except OSError:  # no hard links here (or across a bind mount): copy
                    shutil.copy2(src, dst)
            count += 1
    return count


def _clash(dst: Path, is_dir: bool, shown: Path) -> bool:
    """True where the new result has a file at ``dst`` and the earlier entry is a file too."""
    if not os.path.lexists(dst):
        for parent in dst.parents:
            if os.path.lexists(parent) and not parent.is_dir():
                raise UsageError(
                    f"{shown}: graphkit writes the file {parent.name} where this lies; move it away"
                )
        return False
    if dst.is_dir() and is_dir:
        return False
    if dst.is_dir() or is_dir or dst.is_symlink():
        kind = "a folder" if is_dir else "a file"
        raise UsageError(
            f"{shown}: {kind} where graphkit writes {'a file' if is_dir else 'a folder'}; move it away"
        )
    return True


def _raise(exc: OSError) -> None:
    raise exc


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the earlier result
        return
    old = Path(tempfile.mkdtemp(prefix=f"{sibling_key(target)}{OLD}{os.getpid()}-", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)  # a crash here: the next run puts it back (ResultFolder._recover)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))
