"""Sweep graphkit's generic pipeline over many small models: each one ends as an :class:`Outcome`.

The generic pipeline is what ``graphkit apply`` runs on a model it knows nothing about —
``simplify``, ``set_batch_size`` (where the model has a batch dim), ``conv1d_to_conv2d``,
``cleanup`` — through the :class:`~graphkit.manager.PassManager` with the Timing, OpCount and
Checker instruments, in apply's two stages (passes before ``set_batch_size`` once, the rest at
the batch size). The final model is then run on onnxruntime and compared with the unmodified
model, output by output; a failure is localised by re-running the passes with a check after
each, as apply does.

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
same onnxruntime settings as :func:`graphkit.parity.session` (on one thread); see
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

import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit.errors import GraphkitError
from graphkit.manager import Checker, OpCount, PassManager, Timing
from graphkit.recipe import BATCH_PASS, PassStep
from graphkit.registry import PassRegistry

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


# -- one model -----------------------------------------------------------------------------------


def run_case(case: Case, *, dynamic_batch: bool = True, registry: PassRegistry | None = None) -> Outcome:
    """Run the generic pipeline on one case and classify what happened (never raises)."""
    start = time.perf_counter()
    try:
        outcome = _run_case(case, dynamic_batch, registry or PassRegistry())
    except Exception as exc:  # a bug of the sweep or of a pass (localisation re-runs them)
        outcome = _crash(case.name, None, exc, _pass_in(str(exc)))
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
        return Outcome(name, SKIPPED, f"onnxruntime cannot run the original: {_ort_message(exc)}")
    batch = batch_of(model, feed)
    source = with_dynamic_batch(model) if batch is not None and dynamic_batch else model
    stages = _stages(registry, name, batch)
    manager = PassManager(registry, [Timing(), OpCount(), Checker()])
    current, sites = source, {}
    for steps, at in stages:
        try:
            current, records = manager.run(current, steps, batch=at)
        except Exception as exc:
            return _failure(name, batch, sites, exc)
        sites.update({r.name: r.sites for r in records})
    why = _check(current, feed, reference, outputs, 0.0)
    if why is None:
        return Outcome(name, OK, batch=batch, sites=sites)
    culprit, why = _localise(manager, source, stages, feed, reference, outputs, registry)
    kind = CRASH if why.startswith("onnxruntime") else PARITY
    return Outcome(name, kind, why, culprit, batch, sites)


def _stages(registry: PassRegistry, name: str, batch: int | None) -> list[tuple[list[PassStep], int | None]]:
    """apply's stages: the passes before set_batch_size, then the rest at the batch size."""
    steps = []
    for i, pass_name in enumerate(PIPELINE):
        if pass_name == BATCH_PASS and batch is None:
            continue
        where = f"{name}: passes[{i}]"
        steps.append(PassStep(pass_name, registry.get(pass_name).check_params({}, where), where))
    split = next((i for i, s in enumerate(steps) if s.name == BATCH_PASS), len(steps))
    stages = [(steps[:split], None), (steps[split:], batch)]
    return [(s, b) for s, b in stages if s]


def _failure(name: str, batch: int | None, sites: dict[str, int], exc: BaseException) -> Outcome:
    """A pass raised: a refusal when a pass (or graphkit) said why, a crash otherwise."""
    culprit = _pass_in(str(exc))
    if not isinstance(exc, GraphkitError):
        return _crash(name, batch, exc, culprit)
    # The manager wraps an exception that is not a GraphkitError directly ("pass 'x' raised
    # TypeError: ..."): that is a bug in the pass. A pass's own GraphkitError (which may itself
    # wrap a library's exception, as simplify wraps onnxsim's) is re-raised with one more link.
    if exc.__cause__ is not None and not isinstance(exc.__cause__, GraphkitError):
        return _crash(name, batch, exc, culprit)
    if "produced an invalid model" in str(exc):  # the Checker instrument: a broken rewrite
        return Outcome(name, CRASH, str(exc), culprit, batch, sites)
    return Outcome(name, REFUSED, str(exc), culprit, batch, sites)


def _crash(name: str, batch: int | None, exc: BaseException, culprit: str | None = None) -> Outcome:
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    detail = f"{type(exc).__name__}: {_first_line(exc)}"
    return Outcome(name, CRASH, detail, culprit, batch, trace=trace)


def _pass_in(message: str) -> str | None:
    """The pass a manager error names: "pass 'x' ..." or "... (x, batch 2) ..."."""
    for pass_name in PIPELINE:
        if f"pass '{pass_name}'" in message or f"({pass_name})" in message or f"({pass_name}," in message:
            return pass_name
    return None


def _localise(
    manager: PassManager,
    source: onnx.ModelProto,
    stages: Sequence[tuple[list[PassStep], int | None]],
    feed: Feed,
    reference: Mapping[str, Any],
    outputs: Sequence[str],
    registry: PassRegistry,
) -> tuple[str | None, str]:
    """Re-run the passes with a check after each: (the first pass that broke, why)."""
    why = _check(source, feed, reference, outputs, 0.0)
    if why is not None:  # the dynamic-batch variant itself: the sweep's doing, not a pass's
        return "(dynamic batch inputs)", why
    current = source
    for steps, at in stages:
        for step in steps:
            current, _ = manager.run(current, [step], batch=at)
            extra = registry.get(step.name).contract.tolerance
            why = _check(current, feed, reference, outputs, extra)
            if why is not None:
                return step.name, why
    return None, "the final model differs, but no single pass's output does (nondeterminism?)"


# -- inputs, batch, running ------------------------------------------------------------------------


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


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def _feed(model: onnx.ModelProto, inputs: Sequence[Any]) -> Feed:
    names = [vi.name for vi in _graph_inputs(model)]
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
    inputs = _graph_inputs(model)
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
    for vi in _graph_inputs(out):
        tensor = vi.type.tensor_type
        if tensor.HasField("shape") and len(tensor.shape.dim) >= 1:
            dim = tensor.shape.dim[0]
            dim.Clear()
            dim.dim_param = BATCH_SYMBOL
    return out


def _session(model: bytes) -> Any:
    """:func:`graphkit.parity.session` on one thread: the sweep runs one model per core, and
    the models are tiny."""
    from graphkit.parity import session

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
        return f"onnxruntime cannot run the rewritten model: {_ort_message(exc)}"
    for name in outputs:
        why = compare_outputs(reference[name], got[name], extra_atol)
        if why is not None:
            return f"output '{name}': {why}"
    return None


def compare_outputs(reference: Any, candidate: Any, extra_atol: float = 0.0) -> str | None:
    """Why ``candidate`` differs from ``reference``, or None.

    Shape and dtype must match. Floats follow :data:`RTOL`/:data:`ATOL` (float16 and bfloat16
    :data:`RTOL_16`/:data:`ATOL_16`), NaN equal to NaN; everything else (integers, booleans,
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
    atol += extra_atol
    wide = np.complex128 if ref.dtype.kind == "c" else np.float64
    r, g = ref.astype(wide), got.astype(wide)
    close = np.isclose(g, r, rtol=rtol, atol=atol, equal_nan=True).ravel()
    if close.all():
        return None
    with np.errstate(invalid="ignore"):  # inf - inf: a NaN, ranked as the worst
        excess = np.where(close, 0.0, np.nan_to_num(np.abs(g - r).ravel(), nan=np.inf))
    return _differ(close, r, g, int(np.argmax(excess)), f"rtol {rtol:g}, atol {atol:g}")


def _differ(close: np.ndarray, ref: np.ndarray, got: np.ndarray, i: int, rule: str) -> str:
    where = ",".join(str(int(x)) for x in np.unravel_index(i, ref.shape))
    return (
        f"{int((~close).sum())} of {close.size} elements differ ({rule}); "
        f"worst [{where}]: {got.ravel()[i]!r}, reference {ref.ravel()[i]!r}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the onnx package's node tests ---------------------------------------------------------------


def node_cases(modules: Sequence[str] | None = None) -> list[Case]:
    """The onnx package's backend node tests (``onnx.backend.test.loader``), in its order, each
    with its first data set. onnx >= 1.17 builds them in memory (its case generators warn
    about the overflows they test: silenced); older releases ship ``model.onnx`` and
    ``test_data_set_0/input_*.pb`` files.

    ``modules`` names modules of ``onnx.backend.test.case.node`` (``conv``, ``if_``) to build
    only their tests (at least those: the package keeps every test built so far in one list):
    a few seconds instead of the whole set's ten or more.
    """
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        tests = _load_node_tests(modules)
    cases = []
    for t in tests:
        if t.model is not None:
            cases.append(Case(t.name, t.model.SerializeToString(), tuple(t.data_sets[0][0])))
        elif t.model_dir is not None:
            cases.append(_case_from_dir(t.name, Path(t.model_dir)))
    return cases


def _load_node_tests(modules: Sequence[str] | None) -> list[Any]:
    import importlib

    from onnx.backend.test.loader import load_model_tests

    package = importlib.import_module("onnx.backend.test.case.node")
    built = getattr(package, "_NodeTestCases", None)  # where the case generators put them
    if modules is None or built is None:
        return load_model_tests(kind="node")
    for name in modules:
        importlib.import_module(f"{package.__name__}.{name}")
    return list(built)


def _case_from_dir(name: str, folder: Path) -> Case:
    from onnx import numpy_helper

    data = (folder / "model.onnx").read_bytes()
    model = onnx.load_from_string(data)
    values = []
    for i, vi in enumerate(_graph_inputs(model)):
        raw = (folder / "test_data_set_0" / f"input_{i}.pb").read_bytes()
        kind = vi.type.WhichOneof("value")
        if kind == "sequence_type":
            values.append(numpy_helper.to_list(_parse(onnx.SequenceProto(), raw)))
        elif kind == "optional_type":
            values.append(numpy_helper.to_optional(_parse(onnx.OptionalProto(), raw)))
        else:
            values.append(numpy_helper.to_array(_parse(onnx.TensorProto(), raw)))
    return Case(name, data, tuple(values))


def _parse(proto: Any, raw: bytes) -> Any:
    proto.ParseFromString(raw)
    return proto


# -- many models: one worker process per core, a time limit per model -------------------------------

STARTUP_S = 180.0  # a worker's imports (onnxsim brings torch), on a loaded machine
_READY = "ready"


def sweep(
    cases: Sequence[Case], *, workers: int = 2, timeout: float = 60.0, dynamic_batch: bool = True
) -> Iterator[Outcome]:
    """Run every case in worker processes; yield outcomes as they finish (not in order).

    A case that takes longer than ``timeout`` seconds (a worker's start-up excluded) is a
    ``timeout``: its worker is killed and replaced. A worker that dies (a segfault, an abort
    in native code) makes its case a ``crash`` with the end of what it wrote. What native code
    prints goes to a log file per worker, not to the console. A worker that cannot start at
    all raises RuntimeError: that is the machine's problem, not a model's.
    """
    pending = list(reversed(cases))
    with tempfile.TemporaryDirectory(prefix="graphkit-sweep-") as tmp:
        pool = [_Worker(Path(tmp) / f"worker{i}.log", dynamic_batch) for i in range(max(1, workers))]
        try:
            while pending or any(w.case is not None for w in pool):
                for w in pool:
                    if w.ready and w.case is None and pending:
                        w.submit(pending.pop())
                waiting = [w for w in pool if not w.ready or w.case is not None]
                deadline = min(w.deadline(timeout) for w in waiting)
                ready = mp_connection.wait(
                    [x for w in waiting for x in (w.conn, w.process.sentinel)],
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                for w in waiting:
                    outcome = w.poll(ready, timeout)
                    if outcome is not None:
                        yield outcome
        finally:
            for w in pool:
                w.stop()


class _Worker:
    """One worker process: starting (not ``ready``), idle, or busy with ``case`` since ``since``."""

    def __init__(self, log_path: Path, dynamic_batch: bool) -> None:
        self.log_path = log_path
        self.dynamic_batch = dynamic_batch
        self.case: Case | None = None
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no state (threads, sessions) inherited
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, str(self.log_path), self.dynamic_batch), daemon=True
        )
        self.process.start()
        child.close()
        self.ready, self.since = False, time.monotonic()

    def deadline(self, timeout: float) -> float:
        return self.since + (timeout if self.ready else STARTUP_S)

    def submit(self, case: Case) -> None:
        self.case, self.since = case, time.monotonic()
        self.conn.send(case)

    def poll(self, ready: Sequence[Any], timeout: float) -> Outcome | None:
        """The outcome of the current case if it is done, has died or has run out of time."""
        message = None
        if self.conn in ready:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                pass
        gone = message is None and (self.conn in ready or self.process.sentinel in ready)
        late = time.monotonic() >= self.deadline(timeout)
        if not self.ready:
            if message == _READY:
                self.ready = True
            elif gone or late:
                raise RuntimeError(f"a sweep worker did not start: {_tail(self.log_path) or 'no output'}")
            return None
        assert self.case is not None
        if isinstance(message, Outcome):
            outcome = message
        elif gone:
            self.process.join(5)
            detail = f"the worker died (exit code {self.process.exitcode})"
            outcome = Outcome(self.case.name, CRASH, detail, trace=_tail(self.log_path))
        elif late:
            outcome = Outcome(self.case.name, TIMEOUT, f"no result after {timeout:g} s", seconds=timeout)
        else:
            return None
        if gone or late:
            self.stop()
            self._start()
        self.case = None
        return outcome

    def stop(self) -> None:
        if self.process.is_alive() and self.ready and self.case is None:
            with contextlib.suppress(OSError):
                self.conn.send(None)  # asks it to exit
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _serve(conn: Any, log_path: str, dynamic_batch: bool) -> None:
    """A worker's loop: receive a case, send its outcome, until told to stop (None)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)  # native libraries print to the descriptors, not to sys.stdout
    os.dup2(fd, 2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    registry = PassRegistry()
    import onnxruntime  # noqa: F401 - imported now, outside the first case's time limit
    import onnxsim  # noqa: F401

    conn.send(_READY)
    while True:
        case = conn.recv()
        if case is None:
            return
        os.ftruncate(fd, 0)  # the log holds what the current case printed
        conn.send(run_case(case, dynamic_batch=dynamic_batch, registry=registry))


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace")
    except OSError:
        return ""


def _kind(value: Any) -> str:
    return "nothing" if value is None else "a sequence" if isinstance(value, list) else "a tensor"


def _ort_message(exc: BaseException) -> str:
    """onnxruntime's first line without the C++ source location and signature it puts before
    the reason ("/onnxruntime_src/x.cc:256 onnxruntime::Model::Model(...) Unsupported ...")."""
    text = _first_line(exc)
    at = text.find("/onnxruntime_src/")
    if at < 0:
        return text
    open_ = text.find("(", at)
    depth, end = 0, -1
    for i in range(max(open_, at), len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if open_ >= 0 and depth == 0:
            end = i + 1
            break
    if end < 0:
        return text
    rest = text[end:].lstrip()
    if rest.startswith("[with "):  # a template's arguments
        rest = rest[rest.find("]") + 1 :].lstrip()
    return text[:at] + rest
