"""Validation of a recipe's data, section by section, into :mod:`graphkit.recipe.schema` values.

Validation is complete before any model is loaded. It needs three tables it does not build
itself, so that it imports no pass, no onnx-graphsurgeon and no networkx: the passes (names,
parameters, their types), the lint rule ids and the built-in model names, in a
:class:`~graphkit.recipe.catalog.Catalog` the caller hands in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import onnx

from graphkit._util import did_you_mean, one_line, show, user_import_path
from graphkit.ascend.settings import settings_from_mapping
from graphkit.errors import AtcConfigError, PassError, RecipeError
from graphkit.recipe.catalog import Catalog, PassTable
from graphkit.recipe.checker import Checker, given, kind
from graphkit.recipe.conditions import PSEUDO_OPS, STEP_KEYS, Condition, known_op, parse_condition
from graphkit.recipe.interface import bind_values, parse_inputs, parse_outputs
from graphkit.recipe.loader import read_recipe_data
from graphkit.recipe.precision import parse_precision, resolve_precision_files
from graphkit.recipe.schema import (
    BATCH_PASS,
    DEFAULT_BATCH_SIZES,
    DEFAULT_OPSET,
    MAX_BATCH,
    SAMPLE_FEATURES,
    TASK_KINDS,
    InputSpec,
    ParitySpec,
    PassStep,
    Recipe,
    SampleSpec,
    SourceSpec,
    TaskSpec,
    Tolerance,
)

TOP_KEYS = (
    "name",
    "source",
    "inputs",
    "outputs",
    "batch_sizes",
    "passes",
    "parity",
    "atc",
    "task",
    "expect_ops",
    "lint",
    "precision",
)


def load_recipe(path: str | Path, *, catalog: Catalog | None = None) -> Recipe:
    """Read and validate a recipe file. Raises RecipeError on any problem.

    ``catalog``: the passes, lint rule ids and model names to validate against (default: the
    built-in ones and the installed plugins, :func:`graphkit.recipe.catalog.default_catalog`).
    """
    path = Path(path)
    data, sha256 = read_recipe_data(path)
    if catalog is None:
        from graphkit.recipe.catalog import default_catalog

        catalog = default_catalog()
    return parse_recipe(data, path=path, sha256=sha256, catalog=catalog)


def parse_recipe(data: Any, *, path: Path, catalog: Catalog, sha256: str = "") -> Recipe:
    """Validate a recipe's YAML data (``path``: the file it came from, for messages and relative
    paths) against the ``catalog``'s passes, lint rules and models."""
    c = Checker(path)
    if data is None:
        raise c.fail("", "the recipe is empty")
    top = c.mapping(data, "", required=("name", "source", "inputs", "passes"), allowed=TOP_KEYS)
    name = c.string(top["name"], "name")
    if not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith((".", "-")):
        raise c.fail(
            "name",
            f"{show(name)} must use letters, digits, '-', '_' or '.' and start with a letter, "
            "digit or '_' (it names files)",
        )
    source = _source(c, top["source"], catalog.models)
    inputs = parse_inputs(c, top["inputs"])
    outputs, output_axes = parse_outputs(c, given(top, "outputs", []))
    batched = any(i.batch_axis is not None for i in inputs)
    batch_sizes = _batch_sizes(c, given(top, "batch_sizes", list(DEFAULT_BATCH_SIZES if batched else [1])))
    if not batched and batch_sizes != (1,):
        raise c.fail(
            "batch_sizes",
            "no input has a batch dim (a symbol such as B in its shape), so the model has one "
            "size: batch_sizes: [1]",
        )
    passes = _passes(c, top["passes"], catalog.passes)
    inputs = bind_values(c, inputs, passes)
    parity = _parity(c, given(top, "parity", {}), inputs, outputs, 2 if max(batch_sizes) > 1 else 1)
    _input_sizes(c, inputs, max(*batch_sizes, parity.batch))
    atc_data = c.mapping(given(top, "atc", {}), "atc")
    try:
        atc = settings_from_mapping(atc_data, f"{path}: atc")
    except AtcConfigError as exc:  # its messages quote the user's values as they are
        raise AtcConfigError(one_line(str(exc))) from None
    atc = resolve_precision_files(c, atc)
    precision = parse_precision(c, given(top, "precision", {}))
    task = _task(c, top["task"], inputs, outputs) if top.get("task") is not None else None
    expect_ops = _expect_ops(c, given(top, "expect_ops", {}))
    lint_ignore = _lint(c, given(top, "lint", {}), catalog.lint_rules)
    return Recipe(
        path,
        sha256,
        name,
        source,
        inputs,
        outputs,
        batch_sizes,
        passes,
        parity,
        atc,
        task,
        expect_ops=expect_ops,
        lint_ignore=lint_ignore,
        output_axes=output_axes,
        precision=precision,
    )


MAX_ELEMENTS = 2**31 - 1  # per input and batch: 8 GB as float32, far past any real model's input


def _input_sizes(c: Checker, inputs: tuple[InputSpec, ...], rows: int) -> None:
    """Refuse a shape whose batch could never be fed: checking ``[B, 100000, 100000]`` would
    first try to draw 10^10 seeded values per row (a MemoryError deep inside numpy)."""
    for spec in inputs:
        n = math.prod(spec.concrete(rows))
        if n > MAX_ELEMENTS:
            raise c.fail(
                f"inputs.{spec.name}.shape",
                f"{list(spec.shape)} is {n:.3g} elements at batch {rows}, more than graphkit feeds "
                f"in one input ({MAX_ELEMENTS + 1:.3g}): check the shape",
            )


def _lint(c: Checker, value: Any, rules: Collection[str]) -> tuple[str, ...]:
    lint = c.mapping(value, "lint", allowed=("ignore",))
    ignore = given(lint, "ignore", [])
    if not isinstance(ignore, list):
        raise c.fail("lint.ignore", f"expected a list of rule ids, got {kind(ignore)}")
    for i, rule in enumerate(ignore):
        c.choice(rule, f"lint.ignore[{i}]", list(rules))
    return tuple(ignore)


def _condition(c: Checker, value: Any, where: str) -> Condition:
    try:
        return parse_condition(value)
    except ValueError as exc:
        raise c.fail(where, str(exc)) from None


def _expect_ops(c: Checker, value: Any) -> dict[str, Condition]:
    ops = c.mapping(value, "expect_ops")
    out = {}
    for op, cond in ops.items():
        if not known_op(op):
            hint = did_you_mean(op, [*PSEUDO_OPS, *(s.name for s in onnx.defs.get_all_schemas())])
            raise c.fail(f"expect_ops.{op}", f"unknown op type '{op}'{hint} (or Conv1d, Conv2d, Conv3d)")
        out[op] = _condition(c, cond, f"expect_ops.{op}")
    return out


def _task(c: Checker, value: Any, inputs: tuple[InputSpec, ...], outputs: tuple[str, ...]) -> TaskSpec:
    t = c.mapping(
        value,
        "task",
        required=("kind", "features", "output"),
        allowed=("kind", "input", "features", "output", "score_index", "crops"),
    )
    kind = c.choice(t["kind"], "task.kind", TASK_KINDS)
    names = [i.name for i in inputs]
    if "input" in t:
        inp = c.choice(t["input"], "task.input", names)
    elif len(names) == 1:
        inp = names[0]
    else:
        raise c.fail("task", f"name the input the features feed ('input': one of {', '.join(names)})")
    features = c.choice(t["features"], "task.features", SAMPLE_FEATURES)
    output = c.string(t["output"], "task.output")
    if outputs and output not in outputs:
        raise c.fail("task.output", f"'{output}' is not a recipe output{did_you_mean(output, outputs)}")
    score_index = None
    if kind == "anti_spoofing":
        score_index = c.integer(t.get("score_index", 1), "task.score_index", lo=0)
    elif "score_index" in t:
        raise c.fail("task.score_index", "applies to anti_spoofing only")
    crops = c.integer(t.get("crops", 1), "task.crops", lo=1, hi=64)
    if crops > 1 and kind != "speaker_verification":
        raise c.fail("task.crops", "applies to speaker_verification only")
    return TaskSpec(kind, inp, features, output, score_index, crops)


def _source(c: Checker, value: Any, models: Collection[str]) -> SourceSpec:
    src = c.mapping(value, "source", allowed=("model", "onnx", "weights", "opset"))
    if ("model" in src) == ("onnx" in src):
        raise c.fail("source", "give exactly one of 'model' (a built-in model) or 'onnx' (a file)")
    opset = c.integer(src.get("opset", DEFAULT_OPSET), "source.opset", lo=11, hi=17)
    if "onnx" in src:
        if "weights" in src:
            raise c.fail("source.weights", "weights apply to a built-in model, not to an ONNX file")
        return SourceSpec(onnx=c.file(src["onnx"], "source.onnx"), opset=opset)
    model = c.choice(src["model"], "source.model", sorted(models))
    weights = None
    if src.get("weights") is not None:
        weights = c.file(src["weights"], "source.weights")
    return SourceSpec(model=model, weights=weights, opset=opset)


def _batch_sizes(c: Checker, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise c.fail("batch_sizes", f"expected a non-empty list of integers, got {kind(value)}")
    sizes = tuple(c.integer(v, f"batch_sizes[{i}]", lo=1, hi=MAX_BATCH) for i, v in enumerate(value))
    if len(set(sizes)) != len(sizes):
        raise c.fail("batch_sizes", "batch sizes must be unique")
    return sizes


def _passes(c: Checker, value: Any, table: PassTable) -> tuple[PassStep, ...]:
    if not isinstance(value, list):
        raise c.fail("passes", f"expected a list of passes, got {kind(value)}")
    steps = []
    for i, item in enumerate(value):
        where = f"passes[{i}]"
        expect: dict[str, Condition] = {}
        if isinstance(item, str):
            name, params = c.string(item, where), {}
        else:
            item = c.mapping(item, where, required=("pass",), allowed=("pass", "with", "expect"))
            name = c.string(item["pass"], f"{where}.pass")
            params = given(item, "with", {})
            c.mapping(params, f"{where}.with")
            expect_map = c.mapping(given(item, "expect", {}), f"{where}.expect", allowed=STEP_KEYS)
            expect = {k: _condition(c, v, f"{where}.expect.{k}") for k, v in expect_map.items()}
        if ":" in name and not _is_reference(name):
            raise c.fail(where, f"{show(name)} is not a pass name or a 'package.module:function' reference")
        # a module:function is looked for beside the recipe too (a built-in name imports nothing)
        search = user_import_path(c.path.parent) if ":" in name else contextlib.nullcontext()
        try:
            with search:
                spec = table.get(name)
            checked = spec.check_params(params, f"{c.path}: {where}.with")
        except PassError as exc:  # its messages quote the user's values as they are
            text = str(exc)
            if not text.startswith(str(c.path)):
                text = f"{c.path}: {where}: {text}"
            raise RecipeError(one_line(text)) from None
        if spec.name == BATCH_PASS and "batch" in params:
            raise c.fail(f"{where}.with.batch", "set per batch size from batch_sizes; remove it")
        if spec.name == BATCH_PASS and ("axes" in params or "axis" in params):
            key = "axes" if "axes" in params else "axis"
            raise c.fail(
                f"{where}.with.{key}", "each input's batch axis is where its shape has the symbol; remove it"
            )
        registered = spec.name if ":" not in name else name
        steps.append(PassStep(registered, checked, f"{c.path}: {where}", expect, c.path))
    names = [s.name for s in steps]
    if names.count(BATCH_PASS) > 1:
        raise c.fail("passes", f"'{BATCH_PASS}' may appear once")
    return tuple(steps)


def _is_reference(name: str) -> bool:
    """``package.module:function``: dotted identifiers, so importing it imports no relative or
    empty module name (importlib raises TypeError and ValueError on those)."""
    module, _, attr = name.partition(":")
    return attr.isidentifier() and all(part.isidentifier() for part in module.split("."))


def _tolerance(c: Checker, value: Any, where: str, base: Tolerance) -> Tolerance:
    t = c.mapping(value, where, allowed=("max_abs", "max_rel", "min_cosine"))
    max_abs = c.number(t.get("max_abs", base.max_abs), f"{where}.max_abs", positive=True)
    max_rel = t.get("max_rel", base.max_rel)
    if max_rel is not None:
        max_rel = c.number(max_rel, f"{where}.max_rel", positive=True)
    cos = t.get("min_cosine", base.min_cosine)
    if cos is not None:
        cos = c.number(cos, f"{where}.min_cosine")
        if not -1.0 <= cos <= 1.0:
            raise c.fail(f"{where}.min_cosine", f"{cos} is outside [-1, 1]")
    return Tolerance(max_abs, max_rel, cos)


def _parity(
    c: Checker, value: Any, inputs: tuple[InputSpec, ...], outputs: tuple[str, ...], default_batch: int
) -> ParitySpec:
    p = c.mapping(value, "parity", allowed=("seed", "batch", "tolerance", "samples", "strict_approximate"))
    seed = c.integer(p.get("seed", 0), "parity.seed", lo=0, hi=2**32 - 1)
    batch = c.integer(p.get("batch", default_batch), "parity.batch", lo=1, hi=MAX_BATCH)
    tol_map = c.mapping(given(p, "tolerance", {}), "parity.tolerance")
    default = Tolerance()
    if "default" in tol_map:
        default = _tolerance(c, tol_map["default"], "parity.tolerance.default", default)
    per_output = {}
    for key, val in tol_map.items():
        if key == "default":
            continue
        if outputs and key not in outputs:
            raise c.fail(
                f"parity.tolerance.{key}",
                f"not an output of the recipe{did_you_mean(key, ['default', *outputs])}",
            )
        per_output[key] = _tolerance(c, val, f"parity.tolerance.{key}", default)
    samples_v = given(p, "samples", [])
    if not isinstance(samples_v, list):
        raise c.fail("parity.samples", f"expected a list, got {kind(samples_v)}")
    samples = tuple(_sample(c, s, f"parity.samples[{i}]", inputs) for i, s in enumerate(samples_v))
    strict = c.boolean(p.get("strict_approximate", False), "parity.strict_approximate")
    return ParitySpec(seed, batch, default, per_output, samples, strict)


def _sample(c: Checker, value: Any, where: str, inputs: tuple[InputSpec, ...]) -> SampleSpec:
    s = c.mapping(
        value,
        where,
        required=("input",),
        allowed=("input", "audio", "npy", "features", "count", "required"),
    )
    names = [i.name for i in inputs]
    inp = c.string(s["input"], f"{where}.input")
    if inp not in names:
        raise c.fail(f"{where}.input", f"'{inp}' is not a recipe input{did_you_mean(inp, names)}")
    if ("audio" in s) == ("npy" in s):
        raise c.fail(where, "give exactly one of 'audio' (files + features) or 'npy' (an array)")
    required = c.boolean(s.get("required", True), f"{where}.required")
    count = c.integer(s.get("count", 8), f"{where}.count", lo=1, hi=MAX_BATCH)
    if "audio" in s:
        features = c.choice(s.get("features"), f"{where}.features", SAMPLE_FEATURES)
        audio = c.file(s["audio"], f"{where}.audio", must_exist=required, folder=True)
        return SampleSpec(inp, features, audio, None, count, required)
    if "features" in s:
        raise c.fail(f"{where}.features", "features apply to audio samples, not to npy arrays")
    npy = c.file(s["npy"], f"{where}.npy", must_exist=required)
    return SampleSpec(inp, None, None, npy, count, required)
