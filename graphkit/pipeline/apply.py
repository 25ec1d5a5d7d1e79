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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit import ascend as atc_mod
from graphkit._progress import Heartbeat, Stopwatch
from graphkit._util import one_line
from graphkit.errors import PassError, UsageError
from graphkit.ir.io import sha256_bytes, write_bytes
from graphkit.ir.ort import OrtFailure
from graphkit.ir.proto import declare_output_shapes, input_dims
from graphkit.ir.publish import ResultFolder
from graphkit.ir.weights import WEIGHTS_DIR, SharedWeights
from graphkit.passes._infra import PassRegistry
from graphkit.pipeline.events import PassRecord
from graphkit.pipeline.expect import check_ops
from graphkit.pipeline.instruments import (
    Checker,
    Columns,
    Dump,
    Expect,
    Instrument,
    OpCount,
    Parity,
    Progress,
    Timing,
)
from graphkit.pipeline.manager import PassManager
from graphkit.pipeline.outputs import FIXED, MANIFEST, file_digests, manifest_owned
from graphkit.pipeline.precision import emulated_parity
from graphkit.pipeline.precision import precision_files as precision_files_of
from graphkit.pipeline.provenance import apply_record
from graphkit.pipeline.reference import Feeds, Measurement, Reference
from graphkit.pipeline.report import ApplyResult, BatchResult, build_manifest, worst_figures
from graphkit.pipeline.source import Source, load_source
from graphkit.pipeline.steps import Pipeline
from graphkit.recipe import Recipe

log = logging.getLogger("graphkit")
DEFAULT_LINT_CANN = "8.0"  # the CANN release lint assumes when the recipe's atc block names none


def apply_recipe(
    recipe: Recipe,
    out_dir: str | Path | None = None,
    *,
    batch_sizes: Sequence[int] | None = None,
    weights: Path | None = None,
    parity: bool = True,
    dump_passes: bool = False,
    registry: PassRegistry | None = None,
    save_golden: bool = False,
    lint: bool = True,
    emulate: bool = True,
    self_contained: bool = False,
) -> ApplyResult:
    """Run ``recipe`` and write its per-batch models, ``atc.sh``, the fusion switch file and
    ``manifest.json`` into ``out_dir`` (default ``out/<recipe name>``; all or nothing).
    ``save_golden`` adds, per batch size,
    the reference inputs and outputs (``golden/bs<N>.npz`` and the inputs as ``.bin`` files
    for msame/ais_bench, see :mod:`graphkit.data.golden`). ``lint`` runs :mod:`graphkit.ascend.lint` on
    every final model: warnings are logged, errors stop the run before anything is written.
    ``emulate``: also run each final model under ATC's precision mode, emulated on CPU, for
    ``batches[].precision`` in the manifest (one more run per batch; the recipe's
    ``precision: {emulate: false}`` skips it too). The models share their large weights
    (``weights/``, see :mod:`graphkit.ir.weights`); ``self_contained`` writes each whole."""
    out_dir = Path("out") / recipe.name if out_dir is None else Path(out_dir)
    batch_sizes = tuple(batch_sizes or recipe.batch_sizes)
    registry = registry or PassRegistry()
    with (
        ResultFolder(out_dir, owned_by=manifest_owned, marker=MANIFEST, command="apply") as folder,
        Heartbeat(log) as heartbeat,  # a pass that runs long says so while it runs
    ):
        staging = folder.staging
        names = _output_names(recipe, batch_sizes, save_golden, dump_passes)
        names += [] if self_contained else [f"{WEIGHTS_DIR}/"]
        _refuse_overwrite(recipe, folder.target, names, [weights])
        source = load_source(recipe, weights=weights)
        _refuse_overwrite(recipe, folder.target, names, _external_files(source))
        final_inputs = _final_dims(recipe, input_dims(source.model))
        for b in batch_sizes:  # the ATC rules are checked before any work or any file
            atc_mod.validate_inputs(recipe.atc, _shapes(recipe, b), final_inputs)
        pipeline = Pipeline.from_recipe(recipe)

        base: list[Instrument] = [Timing(), OpCount(), Checker(), Expect()]
        dump_dir = staging / "passes" if dump_passes else None
        feeds = Feeds(recipe, source.reference, source.outputs) if parity or save_golden else None
        if feeds is not None and parity:  # refused in seconds, before any pass, not at bs64's turn
            feeds.check_memory(batch_sizes)
        dumps = _dump(dump_dir, "all")
        for dump in dumps:  # what the first pass gets: passes/all_00_export.onnx
            dump.save_start(source.model, "export" if source.info.get("kind") == "torch" else "source")
        columns = _columns(pipeline, batch_sizes)
        manager = PassManager(registry, [*base, *dumps])
        extra: list[Instrument] = [Parity(feeds.stage1(), "")] if feeds is not None else []
        extra.append(Progress("all", columns, heartbeat=heartbeat))  # last: its time covers the check
        model, records = pipeline.run(manager, source.model, stage="once", extra=extra)

        if not parity and recipe.precision.max_delta is not None:
            log.warning("precision.max_delta is not checked: --no-parity skips the emulated run too")
        batches = []
        seen_lint: set[tuple[str, str | None, str]] = set()
        shared = None if self_contained else SharedWeights(staging)
        for b in batch_sizes:
            label = columns.label_text(f"bs{b}")
            progress = Progress(label, columns, heartbeat=heartbeat)
            bm = PassManager(registry, [*base, *_dump(dump_dir, f"bs{b}"), progress])
            final, brecords = pipeline.run(bm, model, stage="per_batch", batch=b)
            data = final.SerializeToString()  # once: parity, the hash and the file share it
            figures = emulated = None
            if parity and feeds is not None:  # loading into onnxruntime also checks the weights
                ref_b, measured = _check_batch(feeds, data, b, label)
                if measured is None:  # breach: localise it to a pass, with a check after each
                    check = Parity(ref_b, f", batch {b}")
                    final, brecords = pipeline.localise(bm, model, check=check, batch=b)
                    data = final.SerializeToString()
                    measured = ref_b.measure(data, where=f"at batch {b}")
                figures = measured.figures()
                if emulate:  # one more run: the numerics of the om ATC builds
                    emulated = emulated_parity(recipe, ref_b, final, b, label=label)
                out_names = recipe.io_names()[1]  # what rename_io calls each output
                shapes = {out_names.get(k, k): np.shape(v) for k, v in measured.outputs[0].items()}
            else:
                shapes = _inferred_output_shapes(final)
            if declare_output_shapes(final, shapes):  # what the static model really gives
                data = final.SerializeToString()
            check_model_full(final, f"batch {b}", weights=not parity)
            if recipe.expect_ops:
                check_ops(final, recipe.expect_ops, f"{recipe.path}: batch {b}")
            findings = _lint(recipe, final, b, seen_lint) if lint else None
            name = f"{recipe.name}_bs{b}.onnx"
            if shared is not None:  # the weights it shares with the other batch sizes, written once
                data = shared.serialise(final, f"batch {b}")
            write_bytes(staging / name, data)
            if save_golden:
                assert feeds is not None
                _write_golden(staging, recipe, feeds.for_batch(b), b)
            batches.append(
                BatchResult(b, name, sha256_bytes(data), brecords, figures, "", findings, emulated)
            )
            log.info("%s written (%.1f MB%s)", label, len(data) / 1e6, _weights_note(shared))

        settings = _atc_settings(recipe, [*records, *(r for x in batches for r in x.records)])
        settings, precision_files = precision_files_of(settings, {*FIXED, *(x.file for x in batches)})
        fusion = atc_mod.fusion_switch_json(settings)
        commands = []
        for br in batches:
            shapes = _shapes(recipe, br.batch)
            atc_mod.validate_inputs(settings, shapes, final_inputs)
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
        for file_name, content in precision_files.items():  # keep_dtype.cfg, mixlist.json
            write_bytes(staging / file_name, content)
        manifest = build_manifest(recipe, source, records, batches, settings, parity, batch_sizes)
        manifest.update(apply_record(recipe, weights, parity))  # environment, weights, data
        manifest["shared_weights"] = WEIGHTS_DIR if shared is not None and shared.sizes else None
        known = {b.file: b.sha256 for b in batches} | (shared.digests if shared is not None else {})
        manifest["files"] = file_digests(staging, known)
        write_bytes(staging / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())

        files = folder.publish()
        return ApplyResult(out_dir, files, records, batches, manifest)


def _output_names(recipe: Recipe, batch_sizes: Sequence[int], golden: bool, dump: bool) -> list[str]:
    """What this run writes into the output folder (folders end with '/')."""
    names = [f"{recipe.name}_bs{b}.onnx" for b in batch_sizes] + list(FIXED)
    return names + (["golden/"] if golden else []) + (["passes/"] if dump else [])


def _external_files(source: Source) -> list[Path]:
    base = Path(source.info.get("path", ".")).parent
    return [base / rel for rel in source.info.get("external_data", {})]


def _refuse_overwrite(
    recipe: Recipe, target: Path, names: Sequence[str], extra: Sequence[Path | None]
) -> None:
    """An input inside the output folder must be a file the new result keeps (one graphkit
    did not write); the earlier run's files and this run's names are replaced or removed."""
    inputs = [recipe.path, recipe.source.onnx, recipe.source.weights, *extra]
    inputs += [s.audio or s.npy for s in recipe.parity.samples]
    earlier = manifest_owned(target) if target.is_dir() else (lambda rel: False)
    for given in (p for p in inputs if p is not None):
        resolved = Path(given).resolve()
        if not resolved.is_relative_to(target):
            continue
        rel = resolved.relative_to(target).as_posix()
        top = rel.split("/")[0]
        if earlier(rel) or rel in names or f"{top}/" in names:
            raise UsageError(
                f"-o: graphkit would write {target / rel} over its own input {given}; "
                "choose another output folder"
            )
        for name in names:  # a folder where this run writes a file
            p = target / name.rstrip("/")
            if p.is_dir() and not name.endswith("/") and not p.is_symlink():
                raise UsageError(f"{p}: a folder where graphkit writes a file; move it away")


def _lint(
    recipe: Recipe, model: onnx.ModelProto, batch: int, seen: set[tuple[str, str | None, str]]
) -> list[dict[str, Any]]:
    """Lint a final model for the recipe's ATC target; log new warnings, stop on an error."""
    from graphkit.ascend.lint import ERROR, lint_model
    from graphkit.errors import LintError

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
    from graphkit.data.golden import load_golden, save_golden, write_golden_inputs

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


def _dump(directory: Path | None, prefix: str) -> list[Dump]:
    return [Dump(directory, prefix)] if directory is not None else []


def _weights_note(shared: SharedWeights | None) -> str:
    if shared is None or not shared.sizes:
        return ""
    return f"; {WEIGHTS_DIR}/ holds {shared.total_bytes / 1e6:.1f} MB, shared by the batch sizes"


def check_model_full(model: onnx.ModelProto, what: str, *, weights: bool = True) -> None:
    """What ``onnx.checker.check_model(full_check=True)`` checks, on a model about to be
    written: the checker (weights included; ``weights=False`` where onnxruntime has just loaded
    the model, which checked them, and the checker would cost seconds on a 130 MB model), then
    strict shape inference with type checks on its skeleton (declared output shapes must be
    the inferred ones)."""
    from graphkit.ir.proto import skeleton

    try:
        if weights:
            onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(skeleton(model), check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise PassError(f"{what}: the final model is invalid: {one_line(str(exc).strip())}") from None


def _columns(pipeline: Pipeline, batch_sizes: Sequence[int]) -> Columns:
    """One set of column widths for every progress line of the run."""
    labels = ["all", *(f"bs{b}" for b in batch_sizes)]
    steps = max(len(pipeline.once), len(pipeline.per_batch))
    names = [s.name.rpartition(":")[2] for s in pipeline.steps]  # my_passes:fn registers fn, mostly
    return Columns.fit(labels, names, steps)


def _check_batch(feeds: Feeds, model: bytes, batch: int, label: str) -> tuple[Reference, Measurement | None]:
    """The reference at ``batch`` and the final model judged against it (None: a breach, or
    onnxruntime cannot run it), each announced first: at batch 64 it is a run of a minute."""
    rows = "1 row" if batch == 1 else f"{batch} rows"
    log.info("%s parity check of the final model on %s ...", label, rows)
    watch = Stopwatch()
    ref = feeds.for_batch(batch)
    try:
        measured = ref.measure(model, where=f"at batch {batch}")
    except OrtFailure as exc:
        log.warning("batch %d: onnxruntime cannot run the final model (%s)", batch, exc)
        return ref, None  # localised by the per-pass re-run
    if measured.failure is None:
        log.info("%s parity ok in %s: %s", label, watch, worst_figures(measured.figures())[0])
        return ref, measured
    log.warning("%s; re-running the per-batch passes with a check after each", measured.failure)
    return ref, None


def _shapes(recipe: Recipe, batch: int) -> dict[str, tuple[int, ...]]:
    """ATC's --input_shape: the emitted model's inputs (renamed; bound ones are gone)."""
    renames, _, bound = recipe.io_names()
    return {renames.get(i.name, i.name): i.concrete(batch) for i in recipe.inputs if i.name not in bound}


def _final_dims(recipe: Recipe, dims: dict[str, Any]) -> dict[str, Any]:
    renames, _, bound = recipe.io_names()
    return {renames.get(n, n): d for n, d in dims.items() if n not in bound}


def _inferred_output_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Output shapes onnx's inference can tell on a static model (only fully static ones)."""
    from graphkit.ir.proto import dims, infer_shapes, skeleton

    inferred = infer_shapes(skeleton(model))
    out = {}
    for vi in inferred.graph.output:
        d = dims(vi)
        if d is not None and all(isinstance(x, int) and x > 0 for x in d):
            out[vi.name] = tuple(d)
    return out


def _atc_settings(recipe: Recipe, records: Sequence[PassRecord]) -> Any:
    hints = [r.atc for r in records if r.atc]
    unique = []
    for h in hints:  # the per-batch stage repeats the same hint once per batch size
        if h not in unique:
            unique.append(h)
    return atc_mod.merge_pass_hints(recipe.atc, unique, f"{recipe.path}: atc")


__all__ = ["ApplyResult", "BatchResult", "apply_recipe"]
