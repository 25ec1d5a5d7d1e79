"""What an output folder of ``graphkit apply`` holds: the files its manifest lists.

``manifest.json`` lists every file the run wrote (``files``: path relative to the folder →
sha256; the manifest itself aside), so a re-run knows which files of the folder are its
predecessor's (replaced or removed) and which are the user's (kept), and every consumer of the
folder can check that what it reads is what that run wrote.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from graphkit.ir.io import sha256_file
from graphkit.ir.publish import Owned
from graphkit.ir.weights import WEIGHTS_DIR

MANIFEST = "manifest.json"
FIXED = ("atc.sh", "fusion_switch.cfg", MANIFEST)  # what every apply writes besides the models
FOLDERS = ("golden", "passes")  # what --save-golden and --dump-passes write


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest, None where there is none or it cannot be read as one."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def manifest_owned(folder: Path) -> Owned:
    """Which entries of ``folder`` an earlier apply wrote: those its manifest lists (and their
    folders); for a manifest without a file list (written before manifests listed files),
    apply's fixed names, its models and everything under golden/ and passes/."""
    manifest = read_manifest(folder)
    if manifest is None:
        return lambda rel: rel == MANIFEST
    files = manifest.get("files")
    if isinstance(files, dict):
        names = {str(k) for k in files} | {MANIFEST}
        names |= {str(p) for n in list(names) for p in PurePosixPath(n).parents if str(p) != "."}
        return names.__contains__
    models = {b.get("file") for b in manifest.get("batches", []) if isinstance(b, dict)}
    fixed = {*FIXED, *(m for m in models if isinstance(m, str))}
    return lambda rel: rel in fixed or rel.split("/")[0] in FOLDERS


def file_digests(folder: Path, known: dict[str, str]) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative posix path → digest), the manifest
    aside; ``known`` digests are taken as given (the models, hashed when serialised)."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            out[rel] = known.get(rel) or sha256_file(path)
    return out


def weight_files(listed: dict[str, str]) -> list[str]:
    """The shared weights files (``weights/…``) a manifest's ``files`` lists: every model of the
    folder reads some of them (see :mod:`graphkit.ir.weights`)."""
    return [rel for rel in listed if rel.startswith(f"{WEIGHTS_DIR}/")]
