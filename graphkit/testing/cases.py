"""Sweep graphkit's generic pipeline over many small models: each one ends as an :class:`Outcome`.

The generic pipeline is what ``graphkit apply`` runs on a model it knows nothing about —
``simplify``, ``set_batch_size`` (where the model has a batch dim), ``conv1d_to_conv2d``,
``cleanup`` — as a :class:`~graphkit.pipeline.steps.Pipeline` under the Timing, OpCount and
Checker instruments, in apply's two stages (passes before ``set_batch_size`` once, the rest at
the batch size). The final model is then run on onnxruntime and compared with the unmodified
model, output by output; a failure is localised with :meth:`Pipeline.localise`, a check after
every pass, as apply does.

Outcomes (:data:`OUTCOMES`):

``ok``
    every output matches.
``refused``
    a pass raised a :class:`GraphkitError` of its own (e.g. onnxsim failed and
    ``simplify`` says so); the message is the detail.
``crash``
    anything else: an exception that is not a GraphkitError, a pass exception the manager had
    to wrap (``pass 'x' raised TypeError``), a pass output the ONNX checker rejects, a final
    model onnxruntime cannot load or run, or a worker process that died.
``parity break``
    an output differs (see :func:`compare_outputs` for the tolerance).
``skipped``
    the model is out of scope: onnxruntime cannot run the unmodified model (an op, opset, IR
    version or type it lacks, or an input array its Python API does not take: bfloat16,
    float8, int4), or a graph input or output is a map or sparse tensor. Sequences and
    optionals are fed and compared item by item.
``timeout``
    the model took longer than the sweep's per-model limit (its worker is killed).

**Parity** runs the final model and the unmodified one on the test's own inputs under the
same onnxruntime settings as :func:`graphkit.pipeline.reference.session` (on one thread); see
:func:`compare_outputs` for the tolerance.

**The batch dim rule.** A model has a batch dim when it has at least one graph input, every
graph input is a tensor of rank >= 1, its declared dim 0 is symbolic or equal to the feed's
size on axis 0, and all feeds agree on that size (whether dim 0 *means* a batch — a Conv weight's
dim 0 is its output channels — does not matter: the pipeline must keep the model's numbers at that
size). Such a model enters the pipeline as if it
had been exported with a dynamic batch: dim 0 of every graph input becomes the symbol ``N``
(outputs keep their declared shapes: their dim 0 need not be the batch), so ``simplify`` sees
the batch-polymorphic graph and ``set_batch_size`` makes it static again at the feed's size —
its real job, rather than a no-op on a model that is static already. ``dynamic_batch=False``
keeps the declared shapes (``set_batch_size`` then checks them and changes nothing). The
reference is always the unmodified model.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from graphkit._util import first_line
from graphkit.errors import GraphkitError, InvalidRewrite, ParityError
from graphkit.ir.ort import ort_message, session
from graphkit.ir.proto import graph_inputs
from graphkit.numerics import Tolerance, check
from graphkit.passes._infra import EXACT, Contract, PassRegistry
from graphkit.pipeline.instruments import Check, Checker, Gate, OpCount, Timing
from graphkit.pipeline.manager import PassManager
from graphkit.pipeline.steps import Pipeline, Stage
from graphkit.recipe import BATCH_PASS, PassStep

OK, REFUSED, CRASH, PARITY, SKIPPED, TIMEOUT = "ok", "refused", "crash", "parity break", "skipped", "timeout"
OUTCOMES = (OK, REFUSED, CRASH, PARITY, SKIPPED, TIMEOUT)
PIPELINE = ("simplify", BATCH_PASS, "conv1d_to_conv2d", "cleanup")
BATCH_SYMBOL = "N"
# Floating-point outputs: |candidate - reference| <= ATOL + RTOL * |reference|, NaN equal to NaN,
# an infinity equal to the same infinity. The passes of the pipeline are `exact` (an identity of
# the maths): these bounds leave room only for onnxruntime choosing another summation order or
# kernel on the rewritten graph. A pass with an fp_reorder contract adds its tolerance to ATOL.
RTOL, ATOL = 1e-5, 1e-6
# 16-bit floats carry 3 (float16) or 2 (bfloat16) decimal digits: the same rule at their epsilon.
RTOL_16, ATOL_16 = 1e-2, 1e-3

Feed = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One model and one set of inputs, one per graph input in order (arrays; a list for a
    sequence input; None for an empty optional)."""

    name: str
    model: bytes
    inputs: tuple[Any, ...]


@dataclass
class Outcome:
    name: str
    kind: str  # one of OUTCOMES
    detail: str = ""  # why (refusal message, breach, traceback's last line, skip reason)
    pass_name: str | None = None  # the pass that refused, crashed or broke parity
    batch: int | None = None  # the batch size set_batch_size ran at (None: not run)
    sites: dict[str, int] = field(default_factory=dict)  # per pass, sites rewritten
    seconds: float = 0.0
    trace: str = ""  # the traceback of a crash

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_case(case: Case, *, dynamic_batch: bool = True, registry: PassRegistry | None = None) -> Outcome:
    """Run the generic pipeline on one case and classify what happened (never raises)."""
    start = time.perf_counter()
    try:
        outcome = _run_case(case, dynamic_batch, registry or PassRegistry())
    except Exception as exc:  # a bug of the sweep or of a pass (localisation re-runs them)
        outcome = _crash(case.name, None, exc, getattr(exc, "pass_name", None))
    outcome.seconds = round(time.perf_counter() - start, 3)
    return outcome


def _run_case(case: Case, dynamic_batch: bool, registry: PassRegistry) -> Outcome:
    name = case.name
    model = onnx.load_from_string(case.model)
    feed = _feed(model, case.inputs)
    why = _not_supported(model, feed)
    if why:
        return Outcome(name, SKIPPED, why)
    outputs = [o.name for o in model.graph.output]
    try:
        reference = _run(case.model, feed, outputs)
    except Exception as exc:  # onnxruntime raises its own pybind types
        return Outcome(name, SKIPPED, f"onnxruntime cannot run the original: {ort_message(exc)}")
    batch = batch_of(model, feed)
    source = with_dynamic_batch(model) if batch is not None and dynamic_batch else model
    pipeline = _pipeline(registry, name, batch)
    manager = PassManager(registry, [Timing(), OpCount(), Checker()])
    current, sites = source, {}
    for stage in _stages(pipeline):
        try:
            current, records = pipeline.run(manager, current, stage=stage, batch=batch)
        except Exception as exc:
            return _failure(name, batch, sites, exc)
        sites.update({r.name: r.sites for r in records})
    why = _check(current, feed, reference, outputs, 0.0)
    if why is None:
        return Outcome(name, OK, batch=batch, sites=sites)

    def gate(candidate: onnx.ModelProto, contract: Contract) -> str | None:
        return _check(candidate, feed, reference, outputs, contract.tolerance)

    culprit, why = _localise(pipeline, manager, source, batch, gate)
    kind = CRASH if why.startswith("onnxruntime") else PARITY
    return Outcome(name, kind, why, culprit, batch, sites)


def _pipeline(registry: PassRegistry, name: str, batch: int | None) -> Pipeline:
    """The generic pipeline as a recipe would list it; without a batch dim, no set_batch_size."""
    steps = []
    for i, pass_name in enumerate(PIPELINE):
        where = f"{name}: passes[{i}]"
        steps.append(PassStep(pass_name, registry.get(pass_name).check_params({}, where), where))
    return Pipeline.from_steps(steps, where=f"{name}: passes", batched=batch is not None)


def _stages(pipeline: Pipeline) -> list[Stage]:
    """apply's stages: the passes before set_batch_size once, then the rest at the batch size."""
    return [stage for stage in ("once", "per_batch") if pipeline.stage(stage)]


def _failure(name: str, batch: int | None, sites: dict[str, int], exc: BaseException) -> Outcome:
    """A pass raised: a refusal when a pass (or graphkit) said why, a crash otherwise."""
    culprit = getattr(exc, "pass_name", None)  # the pass manager locates every error it raises
    if not isinstance(exc, GraphkitError):
        return _crash(name, batch, exc, culprit)
    # The manager wraps an exception that is not a GraphkitError directly ("pass 'x' raised
    # TypeError: ..."): that is a bug in the pass. A pass's own GraphkitError (which may itself
    # wrap a library's exception, as simplify wraps onnxsim's) is re-raised with one more link.
    if exc.__cause__ is not None and not isinstance(exc.__cause__, GraphkitError):
        return _crash(name, batch, exc, culprit)
    if isinstance(exc, InvalidRewrite):  # the Checker instrument: a broken rewrite
        return Outcome(name, CRASH, str(exc), culprit, batch, sites)
    return Outcome(name, REFUSED, str(exc), culprit, batch, sites)


def _crash(name: str, batch: int | None, exc: BaseException, culprit: str | None = None) -> Outcome:
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    detail = f"{type(exc).__name__}: {first_line(exc)}"
    return Outcome(name, CRASH, detail, culprit, batch, trace=trace)


def _localise(
    pipeline: Pipeline, manager: PassManager, source: onnx.ModelProto, batch: int | None, gate: Gate
) -> tuple[str | None, str]:
    """Re-run the passes with a check after each: (the first pass that broke, why)."""
    why = gate(source, EXACT)
    if why is not None:  # the dynamic-batch variant itself: the sweep's doing, not a pass's
        return "(dynamic batch inputs)", why
    current = source
    for stage in _stages(pipeline):
        try:
            current, _ = pipeline.localise(manager, current, check=Check(gate), stage=stage, batch=batch)
        except ParityError as exc:
            return exc.pass_name, str(exc)
    return None, "the final model differs, but no single pass's output does (nondeterminism?)"


def _not_supported(model: onnx.ModelProto, feed: Feed) -> str | None:
    """Why the sweep cannot feed or compare this model's values, or None."""
    inits = {i.name for i in model.graph.initializer}
    for what, values in (("input", model.graph.input), ("output", model.graph.output)):
        for vi in values:
            kind = vi.type.WhichOneof("value")
            if vi.name not in inits and kind not in _VALUE_KINDS:
                return f"input or output not a tensor, sequence or optional: {what} '{vi.name}' is a {kind}"
    for name, value in feed.items():
        if isinstance(value, np.ndarray) and value.dtype.type.__module__ == "ml_dtypes":  # bfloat16, float8…
            return (
                f"onnxruntime cannot run the original: input '{name}' is {value.dtype}, "
                "an array type onnxruntime's Python API does not take"
            )
    return None


_VALUE_KINDS = ("tensor_type", "sequence_type", "optional_type")


def _feed(model: onnx.ModelProto, inputs: Sequence[Any]) -> Feed:
    names = [vi.name for vi in graph_inputs(model)]
    if len(names) != len(inputs):
        raise ValueError(f"{len(inputs)} input values for {len(names)} graph inputs")
    return {n: _value(v) for n, v in zip(names, inputs)}


def _value(v: Any) -> Any:
    """An input value as onnxruntime takes it: TensorProtos and numpy scalars become arrays."""
    from onnx import numpy_helper

    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    return np.asarray(v) if isinstance(v, np.generic) else v


def batch_of(model: onnx.ModelProto, feed: Feed) -> int | None:
    """The batch size set_batch_size runs at, or None where the model has no batch dim (see
    the module docstring for the rule)."""
    sizes = set()
    inputs = graph_inputs(model)
    for vi in inputs:
        value = feed[vi.name]
        if not isinstance(value, np.ndarray) or value.ndim < 1 or value.shape[0] < 1:
            return None
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and len(dims) != value.ndim:
            return None
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value != value.shape[0]:
            return None
        sizes.add(int(value.shape[0]))
    return sizes.pop() if len(sizes) == 1 else None


def with_dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs have the symbolic dim 0 ``N``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in graph_inputs(out):
        tensor = vi.type.tensor_type
        if tensor.HasField("shape") and len(tensor.shape.dim) >= 1:
            dim = tensor.shape.dim[0]
            dim.Clear()
            dim.dim_param = BATCH_SYMBOL
    return out


def _session(model: bytes) -> Any:
    """:func:`graphkit.ir.ort.session` on one thread: the sweep runs one model per core, and the
    models are tiny."""
    return session(model, threads=1)


def _run(model: bytes, feed: Feed, outputs: Sequence[str]) -> dict[str, Any]:
    return dict(zip(outputs, _session(model).run(list(outputs), feed)))


def _check(
    model: onnx.ModelProto,
    feed: Feed,
    reference: Mapping[str, Any],
    outputs: Sequence[str],
    extra_atol: float,
) -> str | None:
    """Why ``model`` does not reproduce ``reference`` on ``feed``, or None."""
    try:
        got = _run(model.SerializeToString(), feed, outputs)
    except Exception as exc:  # onnxruntime's own pybind types
        return f"onnxruntime cannot run the rewritten model: {ort_message(exc)}"
    for name in outputs:
        why = compare_outputs(reference[name], got[name], extra_atol)
        if why is not None:
            return f"output '{name}': {why}"
    return None


def compare_outputs(reference: Any, candidate: Any, extra_atol: float = 0.0) -> str | None:
    """Why ``candidate`` differs from ``reference``, or None.

    Shape and dtype must match. Floats follow :func:`graphkit.numerics.check` with
    ``max_abs`` :data:`ATOL` and ``max_rel`` :data:`RTOL` (float16 and bfloat16:
    :data:`ATOL_16`/:data:`RTOL_16`), NaN equal to NaN; everything else (integers, booleans,
    strings, 8-bit floats) must be equal.
    """
    if _kind(reference) != _kind(candidate):
        return f"{_kind(candidate)} where the reference is {_kind(reference)}"
    if reference is None:  # two empty optionals
        return None
    if isinstance(reference, list):  # a sequence: item by item
        if len(reference) != len(candidate):
            return f"a sequence of {len(candidate)} where the reference has {len(reference)}"
        for i, (r, c) in enumerate(zip(reference, candidate)):
            why = compare_outputs(r, c, extra_atol)
            if why is not None:
                return f"sequence item {i}: {why}"
        return None
    ref, got = np.asarray(reference), np.asarray(candidate)
    if ref.shape != got.shape:
        return f"shape {got.shape} differs from the reference {ref.shape}"
    if ref.dtype != got.dtype:
        return f"dtype {got.dtype} differs from the reference {ref.dtype}"
    low = ref.dtype.name in ("float16", "bfloat16")
    if not (ref.dtype.kind in "fc" or low):
        if np.array_equal(ref, got):
            return None
        close = (ref == got).ravel()
        i = int(np.argmin(close))
        return _differ(close, ref, got, i, "exact")
    rtol, atol = (RTOL_16, ATOL_16) if low else (RTOL, ATOL)
    tol = Tolerance(max_abs=atol + extra_atol, max_rel=rtol, min_cosine=None)
    c = check(ref, got, tol)
    if c.ok:
        return None
    where = ",".join(str(i) for i in c.worst_index)
    return (
        f"{c.failing} of {c.size} elements differ ({tol.describe()}); worst [{where}]: "
        f"{c.candidate!r}, reference {c.reference!r}; would pass with {c.min_tolerance()}"
    )


def _differ(close: np.ndarray, ref: np.ndarray, got: np.ndarray, i: int, rule: str) -> str:
    where = ",".join(str(int(x)) for x in np.unravel_index(i, ref.shape))
    return (
        f"{int((~close).sum())} of {close.size} elements differ ({rule}); "
        f"worst [{where}]: {got.ravel()[i]!r}, reference {ref.ravel()[i]!r}"
    )


def _kind(value: Any) -> str:
    return "nothing" if value is None else "a sequence" if isinstance(value, list) else "a tensor"
