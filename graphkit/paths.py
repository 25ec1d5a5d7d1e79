"""Guards on output paths: graphkit never writes over a file it reads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from graphkit.errors import UsageError


def refuse_overwrite(
    files: Iterable[Path],
    inputs: Iterable[Path | None],
    *,
    folders: Iterable[Path] = (),
    flag: str = "-o",
) -> None:
    """Raise UsageError when an output file is one of the inputs, or one of the output
    ``folders`` (which graphkit replaces whole) holds one of them."""
    ins = {p.resolve(): p for p in inputs if p is not None}
    outs = [(Path(f), False) for f in files] + [(Path(d), True) for d in folders]
    for out, folder in outs:
        target = out.resolve()
        for resolved, original in ins.items():
            if resolved == target or (folder and resolved.is_relative_to(target)):
                raise UsageError(
                    f"{flag}: graphkit would write {out} over its own input {original}; "
                    "choose another output folder"
                )
