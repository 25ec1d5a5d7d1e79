"""Reading .npy and .npz files: each one what its name says, or a DataError that says what it is.

``np.load`` reads by content, not by name: a ``.npz`` archive (or any zip) named ``.npy`` comes
back as an ``NpzFile``, a ``.npy`` named ``.npz`` as an array, and either fails later far from
the file (``unhashable type: 'slice'``, ``'numpy.ndarray' object has no attribute 'files'``).
These loaders check the magic bytes first and name the file and what it really holds.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from graphkit._util import one_line
from graphkit.errors import DataError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record


def load_npy(path: str | Path, what: str = "array") -> np.ndarray:
    """The one array of the ``.npy`` file ``path`` (``what`` it is for, in messages)."""
    path = Path(path)
    magic = _magic(path, what)
    if magic.startswith(ZIP_MAGICS):
        raise DataError(
            f"{path}: the {what} is a .npz (zip) archive, not a .npy array; save one array with "
            "np.save, or take it out of the archive with np.load(path)[name]"
        )
    if not magic.startswith(NPY_MAGIC):
        raise DataError(f"{path}: the {what} is not a .npy file (it lacks numpy's magic bytes)")
    try:
        with open(path, "rb") as f:
            _check_size(path, f, what)
            return np.lib.format.read_array(f, allow_pickle=False)
    except OSError as exc:
        raise DataError(one_line(f"{path}: cannot read the {what}: {exc.strerror or exc}")) from None
    except (ValueError, EOFError, MemoryError) as exc:  # a pickle, a bad header, a truncated file
        raise DataError(one_line(f"{path}: not a readable .npy {what} ({exc})")) from None


def load_npz(path: str | Path, what: str = "archive") -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path`` by name (without the ``.npy`` of the members)."""
    path = Path(path)
    magic = _magic(path, what)
    if magic.startswith(NPY_MAGIC):
        raise DataError(f"{path}: the {what} is one .npy array, not a .npz archive of named arrays")
    if not magic.startswith(ZIP_MAGICS):
        raise DataError(f"{path}: the {what} is not a .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            # NpzFile hands back the raw bytes of a member that is no .npy: refuse it by name
            foreign = [n for n in z.zip.namelist() if not n.endswith(".npy")]
            if foreign:
                raise DataError(
                    one_line(f"{path}: the {what} holds {foreign[0]!r}, which is not a .npy array")
                )
            return {k: z[k] for k in z.files}
    except OSError as exc:
        raise DataError(one_line(f"{path}: cannot read the {what}: {exc.strerror or exc}")) from None
    except (ValueError, EOFError, KeyError, MemoryError, zipfile.BadZipFile) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise DataError(one_line(f"{path}: not a readable .npz {what} ({why})")) from None


def _magic(path: Path, what: str) -> bytes:
    """The first bytes of ``path``; a path that is missing or not a regular file is a DataError
    (``/dev/zero`` or a FIFO would be read without end)."""
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    if not path.is_file():
        raise DataError(f"{path}: the {what} is not a regular file")
    try:
        with open(path, "rb") as f:
            return f.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(one_line(f"{path}: cannot read the {what}: {exc.strerror or exc}")) from None


def _check_size(path: Path, f: BinaryIO, what: str) -> None:
    """Refuse a header that promises more bytes than the file holds before numpy allocates
    them (a corrupt header can claim terabytes); leaves ``f`` at the start."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # 3.0 (unicode field names) has no public header reader: numpy checks it itself
        f.seek(0)
        return
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = path.stat().st_size - f.tell()
    if need > have:
        raise DataError(
            f"{path}: the {what} is truncated or its header is corrupt: the header says "
            f"{shape} {dtype} ({need} bytes), the file holds {have}"
        )
    f.seek(0)
