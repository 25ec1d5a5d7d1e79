"""Reading and writing models and files: clear errors in, atomic writes out.

Every file graphkit writes goes to a temporary name in the destination folder first and is
renamed into place, so an interrupted run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError, EncodeError
from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model

from graphkit._util import first_line, one_line
from graphkit.errors import DataError, ModelError, OutputError, check_interrupted
from graphkit.ir.proto import is_onnx_domain

# One serialised protobuf message holds at most 2 GiB. graphkit keeps a model as one ModelProto
# (passes, onnxruntime sessions for parity, the file it writes), so a model whose weights add up
# to more than that cannot be handled, even when its file keeps them in external data.
PROTOBUF_LIMIT = 2**31 - 1


@dataclass
class LoadedModel:
    """A model read by :func:`read_model`, its external data already in memory."""

    model: onnx.ModelProto
    external_files: list[Path] = field(default_factory=list)  # where its weights were read from


def load_model(path: str | Path) -> onnx.ModelProto:
    """The model at ``path``, weights included; anything wrong with the file is a ModelError."""
    return read_model(path).model


def read_model(path: str | Path) -> LoadedModel:
    """Read a model and its external data (resolved against the model's folder, not the cwd).

    The proto is parsed without its external data first: the opset and the total size are
    checked before any weight is read, and nothing serialises a message over 2 GB (protobuf
    fails with a bare EncodeError there; the checker on such a proto with a ValueError).
    """
    path = Path(path)
    _check_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        why = f"{type(exc).__name__}: {first_line(exc)}"
        raise ModelError(f"{path}: not an ONNX model, or a truncated one ({why})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path}: not an ONNX model (no graph found)")
    check_opset(model, str(path))
    files = _load_external_data(model, path)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path}: invalid ONNX model: {first_line(exc)}") from None
    return LoadedModel(model, files)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not an ONNX model file")
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path}: the file is empty")
    if size > PROTOBUF_LIMIT:  # read whole, it would fail to parse anyway
        raise ModelError(
            f"{path}: {size / 1e9:.1f} GB is more than one protobuf message can hold (2 GB): not an "
            "ONNX model file (models over 2 GB keep their weights in external data files)"
        )


def check_opset(model: onnx.ModelProto, where: str) -> None:
    """Refuse a default-domain opset that onnx or the installed onnxruntime does not implement.

    onnx's checker accepts any opset number (it takes the newest schema of each op), and
    onnxruntime refuses unreleased opsets only when a session is created, mid-run, in a
    paragraph of C++ context; this names the opset and what is supported, up front.
    """
    version = next((o.version for o in model.opset_import if is_onnx_domain(o.domain)), None)
    if version is None:
        return
    known = onnx.defs.onnx_opset_version()
    if version > known:
        raise ModelError(
            f"{where}: opset {version} is newer than onnx {onnx.__version__} knows (up to opset "
            f"{known}); re-export the model at opset {known} or older"
        )
    top = onnxruntime_max_opset()
    if top is not None and version > top:
        import onnxruntime

        raise ModelError(
            f"{where}: opset {version} is newer than onnxruntime {onnxruntime.__version__} supports "
            f"(up to opset {top}); re-export the model at opset {top} or older"
        )


@functools.cache  # the installed onnxruntime does not change while the process runs
def onnxruntime_max_opset() -> int | None:
    """The newest ai.onnx opset the installed onnxruntime accepts; None without onnxruntime.

    onnxruntime has no API for it (its schema registry also holds the opset under development,
    which it refuses), so this asks it: one single-node session per opset, newest first. It
    usually trails onnx by a release or two, so this takes a few milliseconds.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
        check_interrupted(exc)
        return None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    for version in range(onnx.defs.onnx_opset_version(), 6, -1):
        probe = onnx.helper.make_model(
            onnx.helper.make_graph(
                [onnx.helper.make_node("Identity", ["x"], ["y"])],
                "probe",
                [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
            ),
            opset_imports=[onnx.helper.make_opsetid("", version)],
            ir_version=8,
        )
        try:
            ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception:  # onnxruntime raises its own pybind types; any refusal counts
            continue
        return version
    return None


def _load_external_data(model: onnx.ModelProto, path: Path) -> list[Path]:
    """Read the external data of ``model`` (saved at ``path``) into it; returns the files read."""
    base = path.parent
    external = [t for t in _all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        return []
    size = model.ByteSize()  # the proto alone, without its external weights: small
    files: dict[Path, None] = {}  # an ordered set
    for tensor in external:
        try:
            info = ExternalDataInfo(tensor)
        except ValueError as exc:
            raise ModelError(f"{path}: tensor {tensor.name}: bad external data entry: {exc}") from None
        file = base / info.location
        if not info.location or not file.is_file():
            what = "is a folder" if file.is_dir() else "not found"
            raise ModelError(
                f"{path}: external data file {file} {what} (the weights of tensor '{tensor.name}'; "
                "the model names the file relative to its own folder)"
            )
        files.setdefault(file, None)
        length = info.length if info.length is not None else file.stat().st_size - (info.offset or 0)
        size += length + 16  # + the raw_data field's tag and length, with room to spare
    if size > PROTOBUF_LIMIT:
        raise ModelError(
            f"{path}: the model with its external data is {size / 1e9:.2f} GB; graphkit holds a "
            "model as one protobuf message (passes, parity, the emitted file), which is limited "
            "to 2 GB"
        )
    try:
        load_external_data_for_model(model, str(base))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelError(f"{path}: cannot read its external data: {first_line(exc)}") from None
    return list(files)


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and tensor attributes of a graph and of its subgraphs, at any depth."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


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
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.
    The file gets the mode the umask gives a new file (mkstemp's own 0600 would keep the ATC
    user on an NPU host from reading what graphkit wrote).

    An OSError while the folder, the temporary file or the rename is made, or while the block
    writes (a full disk, a read-only folder), is an :class:`OutputError` naming ``path``; the
    temporary file is removed either way, so no ``.part`` file is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".part", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
        finally:
            os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc, tmp) from None
    finally:
        with contextlib.suppress(OSError):  # gone already, or the folder went read-only
            os.unlink(tmp)


# mkstemp adds 8 random characters to prefix and suffix: `.{name}.` + 8 + `.part` is 15 bytes
# more than the name, so a legal final name of 241-255 bytes would get an illegal temporary one.
_TEMP_EXTRA = len(".") + len(".") + 8 + len(".part")


def _temp_prefix(path: Path) -> str:
    """``.{name}.``, the name cut (at a character boundary) so that the temporary name fits the
    folder's limit; the name is only there to tell a human what the file was going to be."""
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):  # no such setting here; 255 is every common file system's
        limit = 255
    name = path.name
    while name and len(os.fsencode(name)) > limit - _TEMP_EXTRA:
        name = name[:-1]
    return f".{name}."


_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or choose another output folder",
    errno.EDQUOT: "the disk quota is used up: free some space or choose another output folder",
    errno.EROFS: "a read-only file system: choose another output folder",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.ENAMETOOLONG: "choose a shorter name (most file systems allow 255 bytes per name)",
    errno.ENOTDIR: "a file stands where a folder of this path should be",
    errno.EISDIR: "a folder stands where this file should be: remove it or choose another name",
    errno.EEXIST: "a file stands where this folder should be",
    errno.EFBIG: "the file is larger than the file system allows",
}


def write_error(path: Path, exc: OSError, tmp: str | None = None) -> OSError | OutputError:
    """The OutputError for ``exc``, raised while writing ``path`` (through ``tmp``): it names the
    folder the OS names where that is one of ``path``'s (mkdir), else ``path``. An error about
    some other file (one the block read) is not a write failure of ``path``: it stays as it is."""
    named = exc.filename if exc.filename not in (None, tmp, str(path)) else None
    if named is None:
        what = f"{path}: cannot write it"
    elif path.is_relative_to(os.fsdecode(named)):
        what = f"{os.fsdecode(named)}: cannot create it"
    else:
        return exc
    hint = _WRITE_HINTS.get(exc.errno or 0)
    return OutputError(one_line(f"{what}: {exc.strerror or exc}" + (f" ({hint})" if hint else "")))


def describe_os_error(exc: OSError) -> str:
    """``<path>: <strerror>`` (``<path> -> <path2>`` for a rename) for an OSError nobody caught
    earlier; the bare text where the OS named no path."""
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if n is not None]
    text = exc.strerror or str(exc) or type(exc).__name__
    return one_line(f"{' -> '.join(names)}: {text}" if names else text)


def write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> None:
    """Write atomically; ``mode`` (e.g. 0o755 for a script) is narrowed by the umask."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if mode is not None:
            os.chmod(tmp, mode & ~current_umask())


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), else by
    setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def serialize_model(model: onnx.ModelProto, what: str = "the model") -> bytes:
    """``model.SerializeToString()``, with a ModelError where protobuf's 2 GB limit stops it."""
    try:
        return model.SerializeToString()
    except (EncodeError, ValueError) as exc:  # upb: EncodeError; the python backend: ValueError
        raise ModelError(
            f"{what} cannot be serialised ({first_line(exc)}): one protobuf message holds at most 2 GB"
        ) from None


def save_model(model: onnx.ModelProto, path: str | Path) -> bytes:
    """Serialise and write atomically; returns the bytes written (for hashing)."""
    data = serialize_model(model, str(path))
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
    a missing or unreadable file is a DataError naming ``what`` it should have been, and so is
    a path that is not a regular file (``/dev/zero`` or a FIFO would be read without end)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: the {what} is not a regular file")
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
