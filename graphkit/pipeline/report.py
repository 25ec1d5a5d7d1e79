"""What ``graphkit apply`` produced: its results, ``manifest.json`` and the summary table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from graphkit._util import text_table
from graphkit._version import __version__
from graphkit.numerics import Tolerance
from graphkit.pipeline.events import PassRecord
from graphkit.pipeline.source import Source
from graphkit.recipe import Recipe


@dataclass
class BatchResult:
    batch: int
    file: str
    sha256: str
    records: list[PassRecord]
    parity: dict[str, Any] | None
    atc_command: str
    lint: list[dict[str, Any]] | None = None  # findings of graphkit.ascend.lint (None: not run)
    precision: dict[str, Any] | None = None  # emulated parity: {"mode", "figures", "note"} (CPU)


@dataclass
class ApplyResult:
    out_dir: Path
    files: list[Path]
    records: list[PassRecord]
    batches: list[BatchResult]
    manifest: dict[str, Any] = field(default_factory=dict)

    def all_records(self) -> list[PassRecord]:
        return [*self.records, *(r for b in self.batches for r in b.records)]


def build_manifest(
    recipe: Recipe,
    source: Source,
    records: list[PassRecord],
    batches: list[BatchResult],
    settings: Any,
    parity: bool,
    batch_sizes: Sequence[int],
) -> dict[str, Any]:
    return {
        "graphkit_version": __version__,
        "recipe": {"path": str(recipe.path), "name": recipe.name, "sha256": recipe.sha256},
        "source": source.info,
        "outputs": list(source.outputs),
        "batch_sizes": list(batch_sizes),
        "parity": {
            "enabled": parity,
            "seed": recipe.parity.seed,
            "batch": recipe.parity.batch,
            "tolerance": asdict(recipe.parity.tolerance),
            "per_output": {k: asdict(v) for k, v in recipe.parity.per_output.items()},
            "samples": [
                {"input": s.input, "source": str(s.audio or s.npy), "count": s.count}
                for s in recipe.parity.samples
            ],
        },
        "passes": [r.as_dict() for r in records],
        "batches": [
            {
                "batch": b.batch,
                "file": b.file,
                "sha256": b.sha256,
                "passes": [r.as_dict() for r in b.records],
                "parity": b.parity,
                "atc_command": b.atc_command,
                **({"lint": b.lint} if b.lint is not None else {}),
                **({"precision": b.precision} if b.precision is not None else {}),
            }
            for b in batches
        ],
        "atc": {"script": "atc.sh", "settings": _settings_dict(settings)},
    }


def _settings_dict(settings: Any) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(settings, f.name)) for f in fields(settings)}


def render_summary(result: ApplyResult) -> str:
    """The table ``graphkit apply`` prints: what each pass did, the worst parity figure and the
    smallest tolerance that passes, then the parity rule itself."""
    rows = [("batch", "pass", "sites", "nodes", "time", "worst parity", "min tolerance (abs | rel)")]
    for r in result.all_records():
        batch = "all" if r.batch is None else str(r.batch)
        nodes = f"{r.nodes_before}→{r.nodes_after}"
        rows.append((batch, r.name, str(r.sites), nodes, f"{r.seconds:.2f}s", *worst_figures(r.parity)))
    notes = set()
    for b in result.batches:
        rows.append((str(b.batch), "(final model)", "", "", "", *worst_figures(b.parity)))
        p = b.precision or {}
        if p.get("figures"):  # the same model, ATC's numerics emulated on CPU
            bad = p.get("non_finite_outputs")
            figures = (
                (f"inf/NaN in {', '.join(bad)} (fp16 overflow)", "-") if bad else worst_figures(p["figures"])
            )
            rows.append((str(b.batch), f"(emulated {p['mode']})", "", "", "", *figures))
            notes.add(p["note"])
    lines = [text_table(rows)]
    lines += [f"\nemulated: {n}" for n in sorted(notes)]
    parity = result.manifest.get("parity", {})
    if parity.get("enabled"):
        tol = Tolerance(**parity["tolerance"])
        lines.append(
            f"\nparity: every element |Δ| <= max_abs + max_rel·|ref| and cosine >= min_cosine "
            f"(cosine unchecked where all values lie within max_abs of zero); default {tol.describe()}"
            + (f", per output: {', '.join(parity['per_output'])}" if parity.get("per_output") else "")
        )
    return "\n".join(lines)


def worst_figures(parity: dict | None) -> tuple[str, str]:
    """(the worst figures, the tolerance every output passes with) of one parity entry."""
    if not parity:
        return "-", "-"
    name, fig = max(parity.items(), key=lambda kv: kv[1]["max_abs"])
    cos = min(f["cosine"] for f in parity.values())
    needs = [f["min_tolerance"] for f in parity.values()]
    abs_ = max(n["max_abs"] for n in needs)
    rels = [n["max_rel"] for n in needs]  # None: no max_rel passes (a zero reference is off)
    rel = "none" if None in rels else f"{max(rels):.2g}"
    return f"max|Δ| {fig['max_abs']:.2e} ({name}), min cos {cos:.7f}", f"{abs_:.2g} | {rel}"
