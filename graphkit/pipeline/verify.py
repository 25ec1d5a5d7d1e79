"""Is an output folder of ``graphkit apply`` what its consumer is about to read?

eval, bench and compare read the models (and golden files) ``apply`` wrote. A folder left by an
earlier apply (another recipe, other weights, a model copied in from elsewhere or edited since)
would otherwise be measured as if it were this recipe's result and give a silently wrong number.
So before any work each consumer checks the folder against its ``manifest.json``:

- :func:`verify_outputs`: the folder was applied with this recipe (its file's sha256), these
  weights (``--weights``, else the recipe's ``source.weights``, else seeded) or this ONNX source
  (and its external data), and every file the consumer reads is listed with the sha256 it has;
- :func:`verify_listed`: a file that lies in such a folder (compare, which has no recipe) is the
  one the manifest lists.

A model of the folder brings the shared weights files (``weights/``) it reads: checked with it.

Each refusal is one :class:`UsageError` naming the folder, what differs and what to run.
Hashes are cached per process by path, size and mtime: eval over six batch sizes hashes each
model once (a 130 MB model takes about 0.2 s).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphkit.errors import DataError, UsageError
from graphkit.ir.io import sha256_file
from graphkit.pipeline.outputs import MANIFEST, read_manifest, weight_files
from graphkit.recipe import Recipe

log = logging.getLogger("graphkit")

_APPLY_NAMED = re.compile(r"[^/]+_bs\d+\.onnx|(golden|passes|weights)/.+")  # what only apply writes
_SEARCH_UP = 3  # golden/bs4.npz, passes/x.onnx and golden/bs4/x.bin lie at most this deep


def file_sha256(path: Path) -> str:
    """sha256 of a file, hashed once per process while its size and mtime stay the same."""
    try:
        st = os.stat(path)
        return _cached_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError as exc:  # unreadable (permissions, a folder): say so, not a traceback
        raise DataError(f"{path}: cannot be read to check it ({exc.strerror or exc})") from None


@functools.lru_cache(maxsize=512)
def _cached_sha256(path: str, size: int, mtime_ns: int, ino: int) -> str:
    return sha256_file(path)  # size, mtime and inode are part of the key only


def _short(digest: object) -> str:
    return f"{digest}"[:12] if digest else "none"


def verify_outputs(
    folder: Path, recipe: Recipe, *, weights: Path | None = None, files: Sequence[Path] = ()
) -> dict[str, Any]:
    """Refuse (UsageError) a folder not written by ``graphkit apply`` of ``recipe`` with
    ``weights`` (None: the recipe's ``source.weights``, else seeded), or whose ``files`` (paths
    under it, the ones the consumer reads) are not the ones it wrote. Returns the manifest."""
    folder = Path(folder)
    fix = f"`graphkit apply {recipe.path} -o {folder}" + (f" --weights {weights}`" if weights else "`")
    manifest = read_manifest(folder)
    if manifest is None:
        what = "cannot be read" if (folder / MANIFEST).exists() else "is missing"
        raise UsageError(
            f"{folder}: its {MANIFEST} {what}, so graphkit cannot tell which run wrote the models "
            f"there; run {fix} to write the folder again"
        )
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise UsageError(
            f"{folder}/{MANIFEST}: it lists no files (an older graphkit wrote it); run {fix} to write "
            "the folder again"
        )
    _same_recipe(folder, manifest, recipe, fix)
    _same_source(folder, manifest, recipe, weights, fix)
    for path in _with_weights(folder, files, listed):
        _same_file(folder, path, listed, fix)
    return manifest


def _with_weights(folder: Path, files: Sequence[Path], listed: dict[str, Any]) -> list[Path]:
    """``files``, and the folder's shared weights files where one of them is a model there."""
    paths = [Path(p) for p in files]
    models = [p for p in paths if p.suffix == ".onnx" and p.resolve().parent == folder.resolve()]
    return paths + ([folder / rel for rel in weight_files(listed)] if models else [])


def _same_recipe(folder: Path, manifest: dict[str, Any], recipe: Recipe, fix: str) -> None:
    written = manifest.get("recipe") if isinstance(manifest.get("recipe"), dict) else {}
    if written.get("sha256") != recipe.sha256:
        raise UsageError(
            f"{folder}: written for another recipe or an earlier version of it ({MANIFEST}: "
            f"{written.get('path')} sha256 {_short(written.get('sha256'))}, {recipe.path} is "
            f"{_short(recipe.sha256)}); run {fix} to write it for this one"
        )


def _same_source(
    folder: Path, manifest: dict[str, Any], recipe: Recipe, weights: Path | None, fix: str
) -> None:
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    if recipe.source.onnx is not None:
        _same_onnx_source(folder, source, Path(recipe.source.onnx), fix)
        return
    wanted = weights or recipe.source.weights
    if wanted is not None and not Path(wanted).is_file():
        raise UsageError(f"{wanted}: weights file not found (--weights, or the recipe's source.weights)")
    had, had_sha = source.get("weights"), source.get("weights_sha256")
    if wanted is None and had_sha is not None:
        raise UsageError(
            f"{folder}: applied with weights {had}, but no --weights given (the reference would "
            f"run seeded weights): give --weights {had}, or run {fix} to apply seeded weights"
        )
    if wanted is None:
        return
    digest = file_sha256(Path(wanted))
    if had_sha is None:
        raise UsageError(
            f"{folder}: applied with seeded weights, not {wanted}; run {fix} to apply these weights"
        )
    if had_sha != digest:
        raise UsageError(
            f"{folder}: applied with other weights ({had}, sha256 {_short(had_sha)}) than {wanted} "
            f"(sha256 {_short(digest)}); run {fix} to apply these weights"
        )


def _same_onnx_source(folder: Path, source: dict[str, Any], model: Path, fix: str) -> None:
    checked = {model: source.get("sha256")}
    external = source.get("external_data")
    if isinstance(external, dict):  # relative to the model's folder, as the model names them
        checked.update({model.parent / rel: digest for rel, digest in external.items()})
    for path, digest in checked.items():
        now = file_sha256(path) if path.is_file() else None
        if now != digest:
            state = f"sha256 {_short(now)}" if now else "missing"
            raise UsageError(
                f"{folder}: applied to another version of the source ({path} was sha256 "
                f"{_short(digest)}, now {state}); run {fix} to apply this one"
            )


def _same_file(folder: Path, path: Path, listed: dict[str, Any], fix: str) -> None:
    try:
        rel = path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:  # not under the folder: nothing its manifest can say
        return
    if rel not in listed:
        raise UsageError(
            f"{path}: not written by the apply that wrote {folder}/{MANIFEST} (it is not listed "
            f"there: a file of an earlier run or one copied in); run {fix} to write it again"
        )
    if not path.exists():  # a weights file left behind when the models were copied
        raise UsageError(
            f"{path}: missing; the models of {folder} read their weights from it, so copy it "
            f"with them, or run {fix} to write the folder again"
        )
    digest = file_sha256(path)
    if digest != listed[rel]:
        raise UsageError(
            f"{path}: changed since graphkit apply wrote it (sha256 {_short(digest)}, {MANIFEST} "
            f"lists {_short(listed[rel])}); run {fix} to write it again"
        )


def verify_listed(*paths: Path | None) -> None:
    """Refuse a file that lies in an output folder of ``graphkit apply`` (a ``manifest.json`` at
    most three folders up) and is not what that manifest lists: changed since, or named like
    apply's own files but not listed (left from an earlier run). Other files pass: apply keeps
    files a user put there. Folders and missing files pass: their loader says what they are."""
    for path in paths:
        if path is not None and Path(path).is_file():
            _verify_listed(Path(path))


def _verify_listed(path: Path) -> None:
    for folder in list(path.resolve().parents)[:_SEARCH_UP]:
        manifest = read_manifest(folder)
        if manifest is None or "graphkit_version" not in manifest:  # not ours: look further up
            continue
        listed = manifest.get("files")
        rel = path.resolve().relative_to(folder).as_posix()
        if not isinstance(listed, dict):
            log.info("%s: %s lists no files (an older graphkit); not checked", path, folder / MANIFEST)
        elif rel in listed or _APPLY_NAMED.fullmatch(rel):
            written = manifest.get("recipe")
            recipe = written.get("path", "RECIPE") if isinstance(written, dict) else "RECIPE"
            fix = f"`graphkit apply {recipe} -o {folder}`"
            for checked in _with_weights(folder, [path], listed):
                _same_file(folder, checked, listed, fix)
        return
