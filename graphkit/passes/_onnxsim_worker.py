"""onnxsim in a child process, for the ``simplify`` pass.

onnxsim is native code and segfaults on some real models; in-process, that would end graphkit
mid-run, with no message and no clean-up. :func:`simplify_in_child` runs it in a child
interpreter instead and turns each way a call can end into a result or one clear error:

- the simplified model, read back;
- onnxsim raised: a PassError with the exception's type and its full text, lines joined by
  `` | `` (onnxruntime and onnx put the node and the reason after the first line);
- the child died by a signal: a PassError naming the signal, with what to try instead.

Each call gets a private temporary folder, removed afterwards: the model goes to the child and
the simplified model comes back as files there (a 130 MB model through a pipe would need both
ends reading and writing at once; the pipes carry one short line per call). What the child
prints (onnxsim warns per op it cannot fold) goes to a file there, then to the
``graphkit.passes.simplify`` logger at debug level, never to the console.

**One child, reused.** Importing onnxsim takes seconds (it imports torch), far more than
simplifying a small model, so the child is started on the first call and serves the calls that
follow, one at a time (a lock), as the in-process call did. It is replaced when it has died, and
killed when a call is interrupted (Ctrl-C, the CLI's SIGTERM): an interrupted call leaves no
process and no folder behind. It ends with its parent: at exit, when its stdin closes, and on
Linux at once when the parent is killed (a sweep kills a worker that runs out of time); such a
parent leaves its call's folder behind, without the model, which the child removes once read.
:func:`warm_up` starts the child ahead of time (a sweep worker should, so that no model's time
limit pays for the import); :func:`stop` ends it. The child gets the parent's
``sys.path``, so it imports the same onnxsim, and calls it with the pass's arguments on the same
model proto: the result is byte-identical to an in-process call's.

For graphkit's own tests, and read by the child only (call :func:`stop` after setting them, so
that the next call starts a child that sees them), two environment variables plant a fault in
place of the call to onnxsim: ``GRAPHKIT_TEST_ONNXSIM_CRASH=SIGSEGV`` (a signal's name) makes the
child kill itself with that signal; ``GRAPHKIT_TEST_ONNXSIM_RAISE=text`` makes it print
``text`` (as onnxsim prints its warnings), raise ``RuntimeError(text)`` (line breaks
included), answer, and exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from graphkit.errors import PassError

CRASH_VAR = "GRAPHKIT_TEST_ONNXSIM_CRASH"
RAISE_VAR = "GRAPHKIT_TEST_ONNXSIM_RAISE"
HINT = (
    "skip the pass or pass `skipped_optimizers`/`skip_constant_folding` "
    "(see `graphkit passes` for simplify's parameters)"
)
# The files in a call's folder: what the child is asked, and how it answers.
REQUEST, MODEL, OUTPUT = "request.json", "model.onnx", "output.log"
RESULT, ERROR = "simplified.onnx", "error.json"
READY, DONE, FAILED, LAST = "ready", "done", "failed", "failed-last"  # the child's answers

# The child's bootstrap: drop -c's '' (the cwd) from the path, take the parent's, serve.
_BOOT = (
    "import sys, json; del sys.path[0]; sys.path[:] = json.loads(sys.argv[1]); "
    "from graphkit.passes._onnxsim_worker import serve; serve(int(sys.argv[2]), sys.argv[3] == '1')"
)

log = logging.getLogger("graphkit.passes.simplify")


def simplify_in_child(data: bytes, options: dict[str, Any]) -> bytes:
    """``onnxsim.simplify(model, **options)[0]`` on the serialised model ``data``, in the child;
    returns the simplified model, serialised. Any failure is a PassError."""
    folder = Path(tempfile.mkdtemp(prefix="graphkit-onnxsim-"))
    try:
        (folder / REQUEST).write_text(json.dumps({"options": options}))
        (folder / MODEL).write_bytes(data)
        with _LOCK:
            answer, code = _ask(folder)
        _log_output(folder / OUTPUT)
        if answer == DONE:
            return (folder / RESULT).read_bytes()
        if answer in (FAILED, LAST):
            raise _onnxsim_error(folder / ERROR)
        raise _died(code, folder / OUTPUT)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def warm_up() -> None:
    """Start the child now (it imports onnxsim) rather than on the first call."""
    with _LOCK:
        _child()


def stop() -> None:
    """End the child, if one is running; the next call starts a new one."""
    global _CHILD
    with _LOCK:
        child, _CHILD = _CHILD, None
        if child is not None:
            child.close()


class _Child:
    """The running child: its process, its stdin (one folder per line) and its answers."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="graphkit-onnxsim-", suffix=".log")
        try:
            self.owner = os.getpid()  # a forked copy of the parent must not share this child
            # Linux kills the child when the thread that started it ends: from the main thread
            # only (that is the process ending), so that no other thread's end takes it away.
            main = "1" if threading.current_thread() is threading.main_thread() else "0"
            path = json.dumps([str(p) for p in sys.path])
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, path, str(self.owner), main],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=fd,  # what importing onnxsim prints; after that, each call's own file
            )
            assert self.process.stdin is not None and self.process.stdout is not None
            self.stdin: IO[bytes] = self.process.stdin
            self.answers: IO[bytes] = self.process.stdout
            try:
                ready = self.answers.readline().decode().strip()
            except BaseException:
                self.kill()
                raise
            _log_output(Path(name))
            if ready != READY:
                self.kill()
                code = self.process.returncode
                raise PassError(f"onnxsim's child process did not start (exit code {code}): {_last(name)}")
        finally:
            os.close(fd)
            os.unlink(name)

    def ask(self, folder: Path) -> str:
        """The child's answer for ``folder``; '' where it died first."""
        try:
            self.stdin.write(json.dumps(str(folder)).encode() + b"\n")
            self.stdin.flush()
        except BrokenPipeError:
            return ""
        return self.answers.readline().decode().strip()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.stdin.close()
        self.answers.close()

    def close(self) -> None:
        """Ask it to exit (stdin closes), kill it if it does not."""
        try:
            self.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.answers.close()


_LOCK = threading.Lock()
_CHILD: _Child | None = None  # started on the first call (see the module docstring)


def _child() -> _Child:
    global _CHILD
    if _CHILD is None or _CHILD.owner != os.getpid() or _CHILD.process.poll() is not None:
        if _CHILD is not None and _CHILD.owner == os.getpid():
            _CHILD.close()
        _CHILD = None
        _CHILD = _Child()
    return _CHILD


def _ask(folder: Path) -> tuple[str, int | None]:
    """(the child's answer, its exit code where it has ended)."""
    global _CHILD
    child = _child()
    answer = ""
    try:
        answer = child.ask(folder)
    finally:  # interrupted, or the child died or was done: it is not asked again
        if answer not in (DONE, FAILED):
            _CHILD = None
            if answer == "":
                child.kill()  # a no-op where it has died; a kill where the call was interrupted
            else:
                child.close()
    return answer, child.process.returncode


def _log_output(path: Path) -> None:
    try:
        text = path.read_bytes().decode(errors="replace").strip()
    except OSError:
        return
    if text:
        log.debug("onnxsim wrote:\n%s", text)


def _last(path: str | Path) -> str:
    try:
        lines = Path(path).read_bytes().decode(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1].strip() if lines else "no output"


def _died(code: int | None, output: Path) -> PassError:
    if code is not None and code < 0:  # Popen's way of saying "killed by signal -code"
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        if -code == signal.SIGKILL:  # not a crash of its own: the kernel's OOM killer, or a user
            return PassError(f"onnxsim was killed (signal 9, SIGKILL: out of memory?) on this model; {HINT}")
        return PassError(f"onnxsim crashed (signal {-code}, {name}) on this model; {HINT}")
    return PassError(f"onnxsim's child process ended (exit code {code}) without an answer: {_last(output)}")


def _onnxsim_error(path: Path) -> PassError:
    error = json.loads(path.read_text())
    lines = [line.strip() for line in error["message"].splitlines() if line.strip()]
    return PassError(": ".join(["onnxsim failed", error["type"], *([" | ".join(lines)] if lines else [])]))


@atexit.register
def _stop_at_exit() -> None:
    if _CHILD is not None and _CHILD.owner == os.getpid():
        _CHILD.close()


# The child's side.


def serve(parent: int, die_with_parent: bool) -> None:
    """The child: import onnxsim, say ready, then answer one folder per line of stdin."""
    if die_with_parent:
        _die_with(parent)
    # Ctrl-C reaches the whole process group: an idle child stays; the parent, interrupted
    # mid-call, kills the busy one itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w")  # stdout is the answer pipe; what is printed goes to files
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(2, 1)
    import onnxsim  # noqa: F401 - the seconds this takes are why the child is reused

    _redirect(devnull)
    answers.write(READY + "\n")
    answers.flush()
    for line in sys.stdin.buffer:
        folder = Path(json.loads(line))
        with open(folder / OUTPUT, "ab") as output:
            _redirect(output.fileno())
            try:
                answer = _answer(folder)
            finally:
                _redirect(devnull)
        answers.write(answer + "\n")
        answers.flush()
        if answer == LAST:
            return


def _answer(folder: Path) -> str:
    try:
        import onnx

        request = json.loads((folder / REQUEST).read_text())
        model = onnx.ModelProto.FromString((folder / MODEL).read_bytes())
        (folder / MODEL).unlink()  # now, rather than at the end: a parent killed mid-call leaves less
        (folder / RESULT).write_bytes(_simplify(model, request["options"]).SerializeToString())
        return DONE
    except Exception as exc:  # onnxsim raises bare RuntimeError/ValueError from C++
        (folder / ERROR).write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        return LAST if os.environ.get(RAISE_VAR) else FAILED


def _simplify(model: Any, options: dict[str, Any]) -> Any:
    crash = os.environ.get(CRASH_VAR)
    if crash:
        os.kill(os.getpid(), signal.Signals[crash])
    planted = os.environ.get(RAISE_VAR)
    if planted:
        print(planted, flush=True)
        raise RuntimeError(planted)
    import onnxsim

    simplified, _ = onnxsim.simplify(model, **options)
    return simplified


def _redirect(fd: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def _die_with(parent: int) -> None:
    """Linux: be killed when the parent dies, even mid-call (a sweep kills a worker that runs
    out of time); elsewhere, and without it, the child ends when it next reads its closed stdin."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
