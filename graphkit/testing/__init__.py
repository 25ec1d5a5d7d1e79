"""Helpers for testing passes, and the sweep of graphkit's generic pipeline over many models.

For pass authors: tests are tiny graphs written inline as ONNX text, a Before/Expected pair
compared structurally, and every positive case checked numerically on onnxruntime::

    from graphkit.testing import assert_rewrite, build

    def test_identity_goes():
        before = build("g (float[2,3] x) => (float[2,3] y) { a = Identity(x)  y = Relu(a) }")
        expected = build("g (float[2,3] x) => (float[2,3] y) { y = Relu(x) }")
        assert assert_rewrite(before, "remove_identity", expected).sites == 1

- :func:`build`, :func:`weights`: a checked model from ONNX text; seeded weights.
- :func:`apply_pass` (one pass run as the pass manager runs it), :func:`rewrite`,
  :func:`run_sites`, :func:`run_first` (the same, checked fully; under a site selection),
  :func:`roundtrip` (what "unchanged" means: the model through the same import/export).
- :func:`run`, :func:`feeds`, :func:`assert_same_numbers`: onnxruntime on seeded inputs.
- :func:`canonical`, :func:`assert_same_structure`: the structure, names left out.
- :func:`assert_rewrite`: all of it for one pass: checker, Before/Expected structure, numbers.

The sweep of the pipeline over the ONNX node tests: :mod:`graphkit.testing.cases`,
:mod:`graphkit.testing.node_tests`, :mod:`graphkit.testing.sweep`.
"""

from __future__ import annotations

import difflib
import hashlib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from graphkit._util import first_line
from graphkit.ir.build import model_from_text, seeded
from graphkit.ir.graph import export_model, import_graph
from graphkit.ir.ort import session
from graphkit.ir.proto import graph_inputs, is_onnx_domain
from graphkit.numerics import Tolerance, check
from graphkit.passes._infra import PassRegistry, PassResult, Sites, first_sites

Feed = dict[str, np.ndarray]
# exact passes keep the numbers up to the executor's summation order
TOLERANCE = Tolerance(max_abs=1e-5, max_rel=1e-5, min_cosine=None)
SYMBOLIC_DIM = 2  # the size seeded inputs give a symbolic or unknown dim


# -- models ------------------------------------------------------------------------------------


def build(text: str, opset: int = 13, **inits: np.ndarray) -> onnx.ModelProto:
    """A model from ONNX text (header optional), keyword arguments as initializers, checked."""
    return model_from_text(text, opset=opset, inits=inits)


def weights(*shape: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 weights: standard normal times 0.5."""
    return seeded(*shape, seed=seed, scale=0.5)


# -- running a pass ----------------------------------------------------------------------------


def apply_pass(
    model: onnx.ModelProto,
    name: str,
    *,
    sites: Sites | None = None,
    shapes: bool = True,
    registry: PassRegistry | None = None,
    **params: Any,
) -> tuple[onnx.ModelProto, PassResult]:
    """Run one pass (a registered name or ``module:function``) as the pass manager does: import
    with inferred shapes (``shapes``), run under ``sites`` (None: every site), cleanup,
    toposort, export like the input. Shape inference refreshes ``model``'s annotations in place."""
    spec = (registry or PassRegistry()).get(name)
    graph = import_graph(model, shapes=shapes)
    result = spec.run(graph, spec.check_params(params, name), sites)
    graph.cleanup().toposort()
    return export_model(graph, like=model), result


def _checked(model: onnx.ModelProto, what: str) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # the checker raises ValidationError, shape inference InferenceError
        raise AssertionError(f"{what} fails the ONNX checker: {first_line(exc)}") from exc
    return model


def run_sites(
    model: onnx.ModelProto, name: str, sites: Sites | None, *, shapes: bool = True, **params: Any
) -> tuple[onnx.ModelProto, PassResult]:
    """:func:`apply_pass` under a site selection (None: all), the result checked fully."""
    out, result = apply_pass(model, name, sites=sites, shapes=shapes, **params)
    return _checked(out, f"the output of {name}"), result


def rewrite(
    model: onnx.ModelProto, name: str, *, shapes: bool = True, **params: Any
) -> tuple[onnx.ModelProto, int]:
    """Run one pass as the manager does, the result checked fully; returns (model, sites)."""
    out, result = run_sites(model, name, None, shapes=shapes, **params)
    return out, result.sites


def run_first(
    model: onnx.ModelProto, name: str, k: int, **params: Any
) -> tuple[onnx.ModelProto, PassResult, Sites]:
    """:func:`run_sites` on the first ``k`` sites; returns (model, PassResult, Sites)."""
    sites = first_sites(k)
    out, result = run_sites(model, name, sites, **params)
    if result.site_labels != sites.offered[:k]:
        raise AssertionError(f"{name} rewrote {result.site_labels}, not the first {k} of {sites.offered}")
    return out, result, sites


def roundtrip(model: onnx.ModelProto) -> bytes:
    """The model through import/cleanup/export without any pass (what 'unchanged' means)."""
    return _roundtrip(model).SerializeToString()


def _roundtrip(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = import_graph(model)
    graph.cleanup().toposort()
    return export_model(graph, like=model)


# -- numbers -----------------------------------------------------------------------------------


def run(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on onnxruntime (graphkit's session settings, CPU)."""
    return session(model).run(None, dict(feed))


def feeds(model: onnx.ModelProto, *, seed: int = 0, symbolic: int | Mapping[str, int] = SYMBOLIC_DIM) -> Feed:
    """Seeded inputs for the model's graph inputs: static dims as declared, symbolic and unknown
    dims of size ``symbolic`` (one size, or sizes by dim name); floats standard normal, integers
    in [0, 3), booleans at random."""
    return _feeds([model], seed, symbolic)


def _feeds(
    models: Sequence[onnx.ModelProto], seed: int, symbolic: int | Mapping[str, int] = SYMBOLIC_DIM
) -> Feed:
    """Inputs for every model: a dim static in any of them (a static batch set by a pass) has
    that size in all."""
    rng = np.random.default_rng(seed)
    static: dict[tuple[str, int], int] = {}
    for model in models:
        for vi in graph_inputs(model):
            for axis, d in enumerate(vi.type.tensor_type.shape.dim):
                if d.HasField("dim_value"):
                    static.setdefault((vi.name, axis), d.dim_value)

    def size(name: str, axis: int, d: onnx.TensorShapeProto.Dimension) -> int:
        if (name, axis) in static:
            return static[name, axis]
        return symbolic if isinstance(symbolic, int) else symbolic[d.dim_param]

    out: Feed = {}
    for model in models:
        for vi in graph_inputs(model):
            if vi.name in out:
                continue
            tensor = vi.type.tensor_type
            shape = [size(vi.name, axis, d) for axis, d in enumerate(tensor.shape.dim)]
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
            if dtype == np.bool_:
                out[vi.name] = rng.random(shape) > 0.5
            elif dtype.kind in "iu":
                out[vi.name] = rng.integers(0, 3, size=shape).astype(dtype)
            elif dtype.kind in "fc":
                out[vi.name] = rng.standard_normal(shape).astype(dtype)
            else:
                raise ValueError(f"input {vi.name}: cannot seed values of type {dtype}")
    return out


def assert_same_numbers(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    *,
    feeds: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    tolerance: Tolerance = TOLERANCE,
    renames: Mapping[str, str] | None = None,
) -> None:
    """Both models give the same outputs (names, shapes, and values under ``tolerance``, a
    ``reference`` of ``a``) on ``feeds``, else on seeded inputs (:func:`feeds`, dims static in
    either model as they are there); ``feeds`` may give only some inputs. Each model gets the
    inputs it declares. ``renames`` maps names of ``a``'s inputs and outputs to ``b``'s."""
    renames = dict(renames or {})
    feed = _feeds([a], seed) | dict(feeds or {}) if feeds is not None else _feeds([a, b], seed)
    feed |= {renames[k]: v for k, v in feed.items() if k in renames}
    names = [o.name for o in a.graph.output]
    expected = [renames.get(n, n) for n in names]
    if [o.name for o in b.graph.output] != expected:
        raise AssertionError(f"outputs {[o.name for o in b.graph.output]}, expected {expected}")
    reference, candidate = (run(m, {vi.name: feed[vi.name] for vi in graph_inputs(m)}) for m in (a, b))
    problems = []
    for name, ref, got in zip(names, reference, candidate):
        if np.shape(ref) != np.shape(got):
            problems.append(f"{name}: shape {np.shape(got)}, expected {np.shape(ref)}")
            continue
        c = check(ref, got, tolerance)
        if not c.ok:
            problems.append(
                f"{name}: {c.why}; worst at {c.worst_index}: {c.candidate:g} instead of {c.reference:g}"
                f" (would pass with {c.min_tolerance()})"
            )
    if problems:
        raise AssertionError(f"the numbers differ ({tolerance.describe()}):\n  " + "\n  ".join(problems))


# -- structure ---------------------------------------------------------------------------------


def canonical(model: onnx.ModelProto) -> list[str]:
    """The model's graph as lines, tensor and node names left out: the graph inputs' types, the
    nodes (domain, op type, attributes, and what each input is: graph input ``in<k>``, output
    ``#<i>`` or ``#<i>.<m>`` of node i, initializer ``$<k>`` (its dtype, shape and values at its
    first reader), ``-`` for an absent optional input) in a topological order that does not
    depend on how the nodes are listed, then the graph outputs. Bodies of If/Loop/Scan follow
    their node, indented; ``^`` marks a value of the enclosing graph."""
    return _graph_lines(model.graph, {})


def _graph_lines(graph: onnx.GraphProto, outer: Mapping[str, str]) -> list[str]:
    values = {t.name: _value_text(numpy_helper.to_array(t)) for t in graph.initializer}
    refs = {name: f"^{ref}" for name, ref in outer.items()} | values
    lines = []
    for k, vi in enumerate(vi for vi in graph.input if vi.name not in values):
        refs[vi.name] = f"in{k}"
        lines.append(f"input {k}: {_type_text(vi.type)}")
    shown: dict[str, str] = {}  # initializer -> $k, numbered by first reader (sharing shows)
    for i, node in enumerate(_canonical_order(graph, refs)):
        for name in node.input:
            if name in values and name not in shown:
                shown[name] = f"${len(shown)}"
                refs[name] = f"{shown[name]}={values[name]}"  # the first reader shows the value
        head, bodies = _node_text(node, refs)
        lines += [f"#{i} {head}", *("    " + line for line in bodies)]
        refs.update({name: shown[name] for name in node.input if name in shown})
        for m, name in enumerate(node.output):
            refs[name] = f"#{i}.{m}" if len(node.output) > 1 else f"#{i}"
    for k, vi in enumerate(graph.output):
        lines.append(f"output {k}: {refs.get(vi.name, '?')} {_type_text(vi.type)}")
    return lines


def _canonical_order(graph: onnx.GraphProto, refs: Mapping[str, str]) -> list[onnx.NodeProto]:
    """Nodes in topological order, ready nodes taken by a key of what they compute (op,
    attributes, and the keys of their inputs), so that the listing order does not matter."""
    keys, producer = dict(refs), {}
    node_keys = []
    for i, node in enumerate(graph.node):  # exported graphs are toposorted: inputs come first
        head, bodies = _node_text(node, keys)
        node_keys.append(hashlib.sha1("\n".join([head, *bodies]).encode()).hexdigest())
        for m, name in enumerate(node.output):
            keys[name], producer[name] = f"{node_keys[i]}.{m}", i
    needs = [{producer[t] for t in _reads(node) if t in producer} for node in graph.node]
    readers: dict[int, list[int]] = {i: [] for i in range(len(graph.node))}
    for i, deps in enumerate(needs):
        for d in deps:
            readers[d].append(i)
    ready = [(node_keys[i], i) for i, deps in enumerate(needs) if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(graph.node[i])
        for r in readers[i]:
            needs[r].discard(i)
            if not needs[r]:
                heapq.heappush(ready, (node_keys[r], r))
    return order


def _reads(node: onnx.NodeProto) -> Iterable[str]:
    """The names a node reads, its bodies' reads of enclosing values included."""
    yield from node.input
    for attr in node.attribute:
        for body in [attr.g] if attr.HasField("g") else attr.graphs:
            for inner in body.node:
                yield from _reads(inner)


def _node_text(node: onnx.NodeProto, refs: Mapping[str, str]) -> tuple[str, list[str]]:
    op = node.op_type if is_onnx_domain(node.domain) else f"{node.domain}::{node.op_type}"
    attrs, bodies = [], []
    for attr in sorted(node.attribute, key=lambda a: a.name):
        value = helper.get_attribute_value(attr)
        graphs = [value] if isinstance(value, onnx.GraphProto) else []
        if isinstance(value, list) and value and isinstance(value[0], onnx.GraphProto):
            graphs = value
        if graphs:
            attrs.append(f"{attr.name}=<{len(graphs)} graph(s)>")
            for body in graphs:
                bodies += [f"{attr.name}:", *("    " + line for line in _graph_lines(body, refs))]
        else:
            attrs.append(f"{attr.name}={_attr_text(value)}")
    inputs = ", ".join(refs.get(t, f"?{t}") if t else "-" for t in node.input)
    outputs = f" -> {len(node.output)}" if len(node.output) != 1 else ""
    return f"{op}<{', '.join(attrs)}>({inputs}){outputs}", bodies


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        return repr(value.decode(errors="replace"))
    if isinstance(value, onnx.TensorProto):
        return _value_text(numpy_helper.to_array(value))
    if isinstance(value, list):
        return "[" + ", ".join(_attr_text(v) for v in value) + "]"
    if isinstance(value, (int, float, str)):
        return repr(value)
    return str(value).replace("\n", " ")


def _value_text(array: np.ndarray) -> str:
    """dtype, shape and values (a digest of them beyond 16 elements)."""
    text = f"{array.dtype}{list(array.shape)}"
    if array.size <= 16:
        return f"{text} {array.tolist()}"
    return f"{text} sha1:{hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]}"


def _type_text(tp: onnx.TypeProto) -> str:
    if not tp.HasField("tensor_type"):
        return helper.printable_type(tp)
    tensor = tp.tensor_type
    dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    if not tensor.HasField("shape"):
        return dtype
    dims = [str(d.dim_value) if d.HasField("dim_value") else d.dim_param or "?" for d in tensor.shape.dim]
    return f"{dtype}[{','.join(dims)}]"


def assert_same_structure(result: onnx.ModelProto, expected: onnx.ModelProto) -> None:
    """``result`` has the structure of ``expected`` through the pass manager's import/cleanup/
    export round trip (:func:`canonical`: names ignored); the error shows the difference."""
    got, want = canonical(result), canonical(_roundtrip(expected))
    if got != want:
        diff = difflib.unified_diff(want, got, "expected", "result", lineterm="", n=2)
        raise AssertionError("the structure differs (names ignored):\n" + "\n".join(diff))


def assert_rewrite(
    before: onnx.ModelProto,
    name: str,
    expected: onnx.ModelProto | None = None,
    *,
    sites: Sites | None = None,
    numerics: bool = True,
    seed: int = 0,
    tolerance: Tolerance = TOLERANCE,
    **params: Any,
) -> PassResult:
    """Run pass ``name`` on ``before`` and check the result: the full ONNX checker; with
    ``expected``, the same structure (:func:`assert_same_structure`); with ``numerics``, the
    same numbers as ``before`` on seeded inputs (:func:`assert_same_numbers`). Raises an
    AssertionError that names the pass and says what differs; returns the pass's result."""
    out, result = apply_pass(before, name, sites=sites, **params)
    try:
        _checked(out, "the result")
        if expected is not None:
            assert_same_structure(out, expected)
        if numerics:
            assert_same_numbers(before, out, seed=seed, tolerance=tolerance)
    except AssertionError as exc:
        raise AssertionError(f"{name} ({result.sites} sites): {exc}") from None
    return result


__all__ = [
    "TOLERANCE",
    "apply_pass",
    "assert_rewrite",
    "assert_same_numbers",
    "assert_same_structure",
    "build",
    "canonical",
    "feeds",
    "rewrite",
    "roundtrip",
    "run",
    "run_first",
    "run_sites",
    "weights",
]
