"""``graphkit apply``: source → passes (checked) → per-batch models, atc.sh, manifest.

Parity is designed to cost little next to the work: every pass before ``set_batch_size`` is
checked on the batch-polymorphic graph at a small batch (``parity.batch`` seeded rows, plus the
recipe's real samples); the per-batch passes are checked once per emitted batch size, on the
final model of that size. When that check fails, the per-batch passes are re-run with a check
after each one, so the error still names the pass that broke the numbers.

Nothing is written under a final name until every batch size has passed: the files are staged
in a temporary folder inside the output folder and renamed into place at the end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit import __version__
from graphkit import atc as atc_mod
from graphkit.errors import PassError, UsageError
from graphkit.expect import check_ops
from graphkit.io import sha256_bytes, write_bytes
from graphkit.manager import (
    Checker,
    Dump,
    Expect,
    Instrument,
    OpCount,
    Parity,
    PassManager,
    PassRecord,
    Progress,
    Timing,
)
from graphkit.parity import (
    Feed,
    OrtFailure,
    Reference,
    concat_rows,
    first_breach,
    parity_message,
    seeded_rows,
)
from graphkit.recipe import InputSpec, Recipe
from graphkit.registry import PassRegistry
from graphkit.samples import load_samples
from graphkit.source import Source, load_source

log = logging.getLogger("graphkit")
DISTINCT_ROWS = 8  # per-batch checks draw their rows from at least this many distinct rows
DEFAULT_LINT_CANN = "8.0"  # the CANN release lint assumes when the recipe's atc block names none


@dataclass
class BatchResult:
    batch: int
    file: str
    sha256: str
    records: list[PassRecord]
    parity: dict[str, Any] | None
    atc_command: str
    lint: list[dict[str, Any]] | None = None  # findings of graphkit.lint (None: not run)


@dataclass
class ApplyResult:
    out_dir: Path
    files: list[Path]
    records: list[PassRecord]
    batches: list[BatchResult]
    manifest: dict[str, Any] = field(default_factory=dict)

    def all_records(self) -> list[PassRecord]:
        return [*self.records, *(r for b in self.batches for r in b.records)]


def apply_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    batch_sizes: Sequence[int] | None = None,
    weights: Path | None = None,
    parity: bool = True,
    dump_passes: bool = False,
    registry: PassRegistry | None = None,
    save_golden: bool = False,
    lint: bool = True,
) -> ApplyResult:
    """Run ``recipe`` and write its per-batch models, ``atc.sh``, the fusion switch file and
    ``manifest.json`` into ``out_dir`` (all or nothing). ``save_golden`` adds, per batch size,
    the reference inputs and outputs (``golden/bs<N>.npz`` and the inputs as ``.bin`` files
    for msame/ais_bench, see :mod:`graphkit.golden`). ``lint`` runs :mod:`graphkit.lint` on
    every final model: warnings are logged, errors stop the run before anything is written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir}: exists and is not a folder")
    batch_sizes = tuple(batch_sizes or recipe.batch_sizes)
    registry = registry or PassRegistry()
    _refuse_overwrite(recipe, out_dir, batch_sizes, weights)
    source = load_source(recipe, weights=weights)
    for b in batch_sizes:  # the ATC rules are checked before any work or any file
        atc_mod.validate_inputs(recipe.atc, _shapes(recipe.inputs, b), _model_inputs(source.model))
    stage1, stage2 = recipe.split_passes()

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".graphkit-", dir=out_dir))
    try:
        base: list[Instrument] = [Timing(), OpCount(), Checker(), Expect()]
        dump_dir = out_dir / "passes" if dump_passes else None
        feeds = _Feeds(recipe, source.model, source.outputs) if parity or save_golden else None
        manager = PassManager(registry, [*base, *_dump(dump_dir, "all"), Progress("all ")])
        extra: list[Instrument] = [Parity(feeds.stage1(), "")] if feeds is not None else []
        model, records = manager.run(source.model, stage1, extra=extra)

        batches = []
        seen_lint: set[tuple[str, str | None, str]] = set()
        for b in batch_sizes:
            label = f"bs{b} "
            bm = PassManager(registry, [*base, *_dump(dump_dir, f"bs{b}"), Progress(label)])
            final, brecords = bm.run(model, stage2, batch=b)
            data = final.SerializeToString()  # once: parity, the hash and the file share it
            figures = None
            if parity and feeds is not None:  # loading into onnxruntime also checks the weights
                ref_b = feeds.for_batch(b)
                figures = _check_batch(ref_b, data, b)
                if figures is None:  # breach: localise it to a pass, with a check after each
                    final, brecords = bm.run(model, stage2, batch=b, extra=[Parity(ref_b, f", batch {b}")])
                    data = final.SerializeToString()
                    figures = brecords[-1].parity
            else:
                check_model_full(final, f"batch {b}")
            if recipe.expect_ops:
                check_ops(final, recipe.expect_ops, f"{recipe.path}: batch {b}")
            findings = _lint(recipe, final, b, seen_lint) if lint else None
            name = f"{recipe.name}_bs{b}.onnx"
            write_bytes(staging / name, data)
            if save_golden:
                assert feeds is not None
                _write_golden(staging, recipe, feeds.for_batch(b), b)
            batches.append(BatchResult(b, name, sha256_bytes(data), brecords, figures, "", findings))
            log.info("%swritten (%.1f MB)", label, len(data) / 1e6)

        settings = _atc_settings(recipe, [*records, *(r for x in batches for r in x.records)])
        fusion = atc_mod.fusion_switch_json(settings)
        commands = []
        for br in batches:
            shapes = _shapes(recipe.inputs, br.batch)
            atc_mod.validate_inputs(settings, shapes, _model_inputs(source.model))
            br.atc_command = atc_mod.atc_command(
                settings,
                model=br.file,
                output=Path(br.file).stem,
                shapes=shapes,
                fusion_switch_file="fusion_switch.cfg" if fusion else None,
            )
            commands.append(br.atc_command)
        write_bytes(staging / "atc.sh", atc_mod.atc_script(commands).encode(), mode=0o755)
        if fusion:
            write_bytes(staging / "fusion_switch.cfg", fusion.encode())
        manifest = _manifest(recipe, source, records, batches, settings, parity, batch_sizes)
        write_bytes(staging / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())

        files = _publish(staging, out_dir)
        return ApplyResult(out_dir, files, records, batches, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_overwrite(
    recipe: Recipe, out_dir: Path, batch_sizes: Sequence[int], weights: Path | None
) -> None:
    from graphkit.paths import refuse_overwrite

    outputs = [out_dir / f"{recipe.name}_bs{b}.onnx" for b in batch_sizes]
    outputs += [out_dir / n for n in ("atc.sh", "fusion_switch.cfg", "manifest.json")]
    inputs = [recipe.path, recipe.source.onnx, weights or recipe.source.weights]
    inputs += [s.audio or s.npy for s in recipe.parity.samples]
    refuse_overwrite(outputs, inputs, folders=[out_dir / "golden", out_dir / "passes"])


def _publish(staging: Path, out_dir: Path) -> list[Path]:
    """Rename every staged file into place. SIGINT and SIGTERM wait until the renames are done,
    so an interrupt never leaves this run's files beside an earlier run's under final names."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    masked = threading.current_thread() is threading.main_thread()
    if masked:
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        files = []
        for item in sorted(staging.iterdir()):
            target = out_dir / item.name
            if item.is_dir() and target.is_dir():  # golden/ from an earlier run
                shutil.rmtree(target)
            os.replace(item, target)
            files.append(target)
        return files
    finally:
        if masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


def _lint(
    recipe: Recipe, model: onnx.ModelProto, batch: int, seen: set[tuple[str, str | None, str]]
) -> list[dict[str, Any]]:
    """Lint a final model for the recipe's ATC target; log new warnings, stop on an error."""
    from graphkit.errors import LintError
    from graphkit.lint import ERROR, lint_model

    findings = lint_model(
        model,
        soc=recipe.atc.soc_version,
        cann=recipe.atc.cann_version or DEFAULT_LINT_CANN,
        ignore=recipe.lint_ignore,
    )
    errors = [f for f in findings if f.severity == ERROR]
    if errors:
        first = errors[0]
        more = f" (+{len(errors) - 1} more; run graphkit lint on the model)" if len(errors) > 1 else ""
        fix = f"; fix: pass '{first.fix}'" if first.fix else ""
        raise LintError(
            f"batch {batch}: the final model would fail ATC: [{first.rule}] {first.message}{fix}{more}"
            f" (skip a rule with the recipe's lint.ignore, or all with --no-lint)"
        )
    for f in findings:  # the same warnings repeat for every batch size: log each once
        key = (f.rule, f.node, f.message)
        if key not in seen:
            seen.add(key)
            log.warning("lint [%s] %s%s", f.rule, f.message, f"; fix: pass '{f.fix}'" if f.fix else "")
    return [f.as_dict() for f in findings]


def _write_golden(staging: Path, recipe: Recipe, ref: Reference, batch: int) -> None:
    from graphkit.golden import load_golden, save_golden, write_golden_inputs

    meta = {
        "recipe": recipe.name,
        "recipe_sha256": recipe.sha256,
        "seed": recipe.parity.seed,
        "batch": batch,
        "rows": "the parity rows: the recipe's real samples first, then seeded rows",
    }
    path = save_golden(
        staging / "golden" / f"bs{batch}.npz", inputs=ref.feeds[0], outputs=ref.values[0], meta=meta
    )
    write_golden_inputs(load_golden(path), staging / "golden" / f"bs{batch}")


def _dump(directory: Path | None, prefix: str) -> list[Instrument]:
    return [Dump(directory, prefix)] if directory is not None else []


def check_model_full(model: onnx.ModelProto, what: str) -> None:
    """The full ONNX checker (weights included) on a model about to be written."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise PassError(f"{what}: the final model is invalid: {str(exc).strip().splitlines()[0]}") from None


def _check_batch(ref: Reference, model: bytes, batch: int) -> dict[str, Any] | None:
    try:
        figures, _ = ref.measure(model)
    except OrtFailure as exc:
        log.warning("batch %d: onnxruntime cannot run the final model (%s)", batch, exc)
        return None  # localised by the per-pass re-run
    found = first_breach(figures, ref.spec)
    if found is None:
        return {k: f.as_dict() for k, f in figures.items()}
    name, fig, tol, why = found
    message = parity_message(f"at batch {batch}", name, fig, tol, why)
    log.warning("%s; re-running the per-batch passes with a check after each", message)
    return None


class _Feeds:
    """Seeded and real parity inputs, and the reference outputs for every check.

    Stage 1 checks two feeds: ``parity.batch`` seeded rows, and the real samples. The
    per-batch check of size N feeds N rows drawn in turn from ``distinct`` rows — the real
    samples first, then seeded rows, at least :data:`DISTINCT_ROWS` of them — so a model that
    mixes rows of a batch is caught, and the reference of every row is computed once, in one
    run of the unmodified model (rows of an inference-mode model are independent).
    """

    def __init__(self, recipe: Recipe, model: onnx.ModelProto, outputs: Sequence[str]) -> None:
        spec = recipe.parity
        self.inputs = recipe.inputs
        seeded = seeded_rows(self.inputs, spec.batch, spec.seed)
        real = _real_rows(recipe)
        self.stage1_feeds = [seeded] + ([real] if real is not None else [])
        have = sum(_rows(f, self.inputs) for f in self.stage1_feeds)
        extra = seeded_rows(self.inputs, max(0, DISTINCT_ROWS - have), spec.seed + 1)
        feeds = [*self.stage1_feeds] + ([extra] if _rows(extra, self.inputs) else [])
        self.reference = Reference(model, feeds, outputs, spec)
        order = [1, 0, 2] if real is not None else [0, 1]  # real rows first
        order = [i for i in order if i < len(feeds)]
        self.distinct = concat_rows([feeds[i] for i in order], self.inputs)
        self.distinct_values = {
            name: np.concatenate([self.reference.values[i][name] for i in order]) for name in outputs
        }
        self.n_distinct = _rows(self.distinct, self.inputs)

    def stage1(self) -> Reference:
        n = len(self.stage1_feeds)
        return self.reference.rebase(self.reference.values[:n], self.stage1_feeds)

    def for_batch(self, batch: int) -> Reference:
        rows = np.arange(batch) % self.n_distinct
        feed = {i.name: np.take(self.distinct[i.name], rows, axis=i.batch_axis or 0) for i in self.inputs}
        values = {k: v[rows] for k, v in self.distinct_values.items()}
        return self.reference.rebase([values], [feed])


def _real_rows(recipe: Recipe) -> Feed | None:
    """The recipe's real samples as one feed (inputs without samples get seeded rows)."""
    per_input: dict[str, np.ndarray] = {}
    for spec in recipe.parity.samples:
        inp = next(i for i in recipe.inputs if i.name == spec.input)
        rows = load_samples(spec, inp)
        if rows is None:
            continue
        prev = per_input.get(inp.name)
        per_input[inp.name] = rows if prev is None else np.concatenate([prev, rows])
    if not per_input:
        return None
    n = min(len(r) for r in per_input.values())
    filler = seeded_rows(recipe.inputs, n, recipe.parity.seed + 2)
    feed = {}
    for inp in recipe.inputs:
        rows = per_input.get(inp.name)
        feed[inp.name] = filler[inp.name] if rows is None else np.moveaxis(rows[:n], 0, inp.batch_axis or 0)
    return feed


def _rows(feed: Feed, inputs: Sequence[InputSpec]) -> int:
    first = inputs[0]
    return feed[first.name].shape[first.batch_axis or 0]


def _shapes(inputs: Sequence[InputSpec], batch: int) -> dict[str, tuple[int, ...]]:
    return {i.name: i.concrete(batch) for i in inputs}


def _model_inputs(model: onnx.ModelProto) -> dict[str, list[int | str | None]]:
    from graphkit.source import _graph_inputs

    return _graph_inputs(model)


def _atc_settings(recipe: Recipe, records: Sequence[PassRecord]) -> Any:
    hints = [r.atc for r in records if r.atc]
    unique = []
    for h in hints:  # the per-batch stage repeats the same hint once per batch size
        if h not in unique:
            unique.append(h)
    return atc_mod.merge_pass_hints(recipe.atc, unique, f"{recipe.path}: atc")


def _manifest(
    recipe: Recipe,
    source: Source,
    records: list[PassRecord],
    batches: list[BatchResult],
    settings: Any,
    parity: bool,
    batch_sizes: Sequence[int],
) -> dict[str, Any]:
    from dataclasses import asdict

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
            }
            for b in batches
        ],
        "atc": {"script": "atc.sh", "settings": _settings_dict(settings)},
    }


def _settings_dict(settings: Any) -> dict[str, Any]:
    from dataclasses import fields

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(settings, f.name)) for f in fields(settings)}


__all__ = ["ApplyResult", "BatchResult", "apply_recipe"]
