"""Reading and writing models and files: clear errors in, atomic writes out.

Every file graphkit writes goes to a temporary name in the destination folder first and is
renamed into place, so an interrupted run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from graphkit.errors import DataError, ModelError


def load_model(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: the file is empty")
    try:
        model = onnx.load(str(path))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({exc})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path}: not an ONNX model (no graph found)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path}: invalid ONNX model: {str(exc).strip().splitlines()[0]}") from None
    return model


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if mode is not None:
            os.chmod(tmp, mode)


def save_model(model: onnx.ModelProto, path: str | Path) -> bytes:
    """Serialise and write atomically; returns the bytes written (for hashing)."""
    data = model.SerializeToString()
    write_bytes(path, data)
    return data


@contextlib.contextmanager
def fds_to_debug_log(logger: logging.Logger, what: str, fds: Sequence[int] = (1, 2)) -> Iterator[None]:
    """Send what native code writes to file descriptors ``fds`` meanwhile to the debug log.

    Native libraries print straight to the process's stdout/stderr (torch's exporter dumps its
    graph on failure; onnxsim warns per op it cannot fold); library code never prints, so that
    text goes to ``logger`` at debug level. Process-wide: whatever another thread writes to
    those descriptors meanwhile is logged too.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile() as sink:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                logger.debug("%s wrote:\n%s", what, text)


def text_fields(path: str | Path, what: str = "file") -> Iterable[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of every non-blank line of a UTF-8 text file;
    a missing or unreadable file is a DataError naming ``what`` it should have been."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the {what}: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if fields:
            yield number, fields
