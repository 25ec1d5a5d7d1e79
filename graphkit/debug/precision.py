"""The precision advisor: the few nodes to keep in fp32 so that ATC's fp16 numerics pass a gate.

Every figure here comes from :mod:`graphkit.ascend.precision`, an *emulation* of ATC's
precision modes on onnxruntime CPU (its ``NOTE`` says what it does not model), not an NPU
measurement. A *gate* judges an emulated model (the recipe's parity tolerance on the parity
feed, or the task's metric on real data: :mod:`graphkit.debug._precision_gates`).

The search follows Polygraphy's ``debug precision``, with a ranking in front of it:

1. The model with every candidate node in fp16 (``fp16_nodes``) is checked: when it passes,
   nothing needs to be kept.
2. Ranking, one run on one feed of the fp32 model plus an fp16 copy of every candidate node
   fed with the fp32 tensors: a node's contribution is the relative error its fp16 copy's
   output has (``inf`` where fp16 cannot hold a value it reads or writes). Judged on exact
   inputs, a node downstream of another's error is not blamed for it.
3. The smallest prefix of the ranking that passes when kept in fp32: k = 1, 2, 4, ... until a
   prefix passes (the last one is every candidate: when even that fails, there is no answer),
   then binary search between the last failing k and it. About 2·log2(k) checks, and one when
   the worst node is the only one to blame.
4. Pruning: each kept node, the least contributing first, is dropped when the gate still
   passes without it (a node ranked high only because of a neighbour's error).

The search assumes that keeping more nodes in fp32 never makes the gate worse; the set it
reports is checked either way (its last check passed with exactly that set).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ascend.precision import FP16_MAX, NOTE, PrecisionConfig, emulate, fp16_nodes
from graphkit.ir.ort import Feed, run_model
from graphkit.ir.proto import infer_shapes

log = logging.getLogger("graphkit")

KEEP_DTYPE_FILE = "keep_dtype.cfg"  # the file name atc.sh's --keep_dtype reads (toolchain §1.5)
FLOAT = onnx.TensorProto.FLOAT
SHOW_RANKING = 8  # top-ranked nodes the report lists


@dataclass(frozen=True)
class Verdict:
    """A gate's judgement of one emulated model: its figure (max |Δ| of the outputs, or the
    metric's |Δ|) and why it fails (None: it passes)."""

    figure: float
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


Gate = Callable[[onnx.ModelProto], Verdict]


@dataclass
class Advice:
    """What the advisor found: the nodes to keep in fp32 and the checks it took."""

    mode: str
    gate: str
    candidates: int  # nodes that compute in fp16 under the mode
    kept: list[str] = field(default_factory=list)  # node names, graph order
    kept_types: list[str] = field(default_factory=list)
    before: Verdict | None = None  # every candidate in fp16
    after: Verdict | None = None  # the kept nodes in fp32 (None: nothing found)
    found: bool = False  # False: even every candidate in fp32 fails the gate
    checks: int = 0
    ranking: list[tuple[str, str, float]] = field(default_factory=list)  # top (node, op, contribution)
    note: str = NOTE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_kept(config: PrecisionConfig, nodes: Sequence[str]) -> PrecisionConfig:
    """``config`` with ``nodes`` added to its keep_dtype set."""
    return dataclasses.replace(config, keep_dtype=config.keep_dtype | frozenset(nodes))


def advise(
    model: onnx.ModelProto,
    config: PrecisionConfig,
    gate: Gate,
    feed: Feed,
    *,
    gate_name: str = "gate",
) -> Advice:
    """Find a small set of nodes of ``model`` to keep in fp32 under ``config`` so that the
    emulated model passes ``gate`` (see the module docstring); ``feed`` is the ranking's feed."""
    candidates = fp16_nodes(model, config)
    ops = {n.name: n.op_type for n in model.graph.node}
    advice = Advice(config.mode, gate_name, len(candidates))

    def check(keep: Sequence[str]) -> Verdict:
        advice.checks += 1
        verdict = gate(emulate(model, with_kept(config, keep)))
        log.info(
            "precision check %d: %d node(s) in fp32: %s",
            advice.checks,
            len(keep),
            "passes" if verdict.ok else verdict.failure,
        )
        return verdict

    advice.before = check([])
    if advice.before.ok or not candidates:
        advice.found, advice.after = advice.before.ok, advice.before if advice.before.ok else None
        return advice
    scores = contributions(model, config, feed, candidates)
    ranked = sorted(candidates, key=lambda n: -scores[n])  # stable: graph order among equals
    advice.ranking = [(n, ops[n], scores[n]) for n in ranked[:SHOW_RANKING]]
    found = _smallest_prefix(ranked, check)
    if found is None:
        return advice
    k, verdict = found
    keep, verdict = _prune(ranked[:k], verdict, check)
    order = {name: i for i, name in enumerate(candidates)}
    advice.kept = sorted(keep, key=order.__getitem__)
    advice.kept_types = [ops[n] for n in advice.kept]
    advice.after, advice.found = verdict, True
    return advice


def _smallest_prefix(
    ranked: Sequence[str], check: Callable[[Sequence[str]], Verdict]
) -> tuple[int, Verdict] | None:
    """The smallest k whose prefix ``ranked[:k]`` passes (k = 0 is known to fail): galloping
    k = 1, 2, 4, ..., len(ranked), then bisection. None: even the whole ranking fails."""
    n, bad, k = len(ranked), 0, 1
    while True:
        k = min(k, n)
        verdict = check(ranked[:k])
        if verdict.ok:
            break
        if k == n:
            return None
        bad, k = k, 2 * k
    good, best = k, verdict
    while good - bad > 1:
        mid = (good + bad) // 2
        verdict = check(ranked[:mid])
        if verdict.ok:
            good, best = mid, verdict
        else:
            bad = mid
    return good, best


def _prune(
    keep: Sequence[str], verdict: Verdict, check: Callable[[Sequence[str]], Verdict]
) -> tuple[list[str], Verdict]:
    """Drop each kept node, the least contributing (last ranked) first, where the gate still
    passes without it. The first-ranked node stays: without it the prefix search failed."""
    kept = list(keep)
    for name in reversed(keep[1:]):
        trial = [n for n in kept if n != name]
        got = check(trial)
        if got.ok:
            kept, verdict = trial, got
    return kept, verdict


def contributions(
    model: onnx.ModelProto, config: PrecisionConfig, feed: Feed, candidates: Sequence[str]
) -> dict[str, float]:
    """Each candidate's error contribution: the relative error of its output when it alone
    computes in fp16 on the fp32 model's values (its inputs and weights rounded, its output
    rounded), so that a node downstream of another's error is judged on its own. ``inf`` where
    fp16 cannot hold a value the node reads or writes in the fp32 model (|x| > 65504: the
    overflowing node and every node after it until the values are back in range, all of which
    must stay fp32 for the value to survive).

    One run of one model: the fp32 model plus, per candidate, an emulated copy of the node that
    reads the fp32 tensors (``local_model``)."""
    local, pairs = local_model(model, config, candidates)
    names = [t for outs in pairs.values() for pair in outs for t in pair]
    values = run_model(local, [feed], names)[0]
    inits = {t.name: t for t in model.graph.initializer if t.data_type == FLOAT}
    nodes = {n.name: n for n in model.graph.node}
    scores = {}
    for name in candidates:
        outs = pairs[name]
        peaks = [_peak(values[ref]) for ref, _ in outs]
        peaks += [_peak(numpy_helper.to_array(inits[x])) for x in nodes[name].input if x in inits]
        if any(p > FP16_MAX for p in peaks):
            scores[name] = math.inf
            continue
        scores[name] = max((relative_error(values[ref], values[got]) for ref, got in outs), default=0.0)
    return scores


def local_model(
    model: onnx.ModelProto, config: PrecisionConfig, candidates: Sequence[str]
) -> tuple[onnx.ModelProto, dict[str, list[tuple[str, str]]]]:
    """The fp32 model plus an fp16 copy of each candidate node reading the fp32 tensors,
    emulated; per candidate, its float outputs as (fp32 tensor, fp16 copy's tensor) pairs.
    Under allow_mix_precision a copy computes as under force_fp16 (a gray op would otherwise
    follow its fp32 inputs and stay fp32)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    graph = work.graph
    for i, node in enumerate(graph.node):
        node.name = node.name or f"gk_node{i}"  # every original node is kept by name
    originals = frozenset(n.name for n in graph.node)
    infer_shapes(work)
    floats = {v.name for v in (*graph.value_info, *graph.output) if v.type.tensor_type.elem_type == FLOAT}
    wanted, pairs, have = set(candidates), {}, {o.name for o in graph.output}
    for node in list(graph.node):
        if node.name not in wanted:
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"{node.name}.gk_local"
        del copy.output[:]
        copy.output.extend(f"{o}.gk_local" if o else "" for o in node.output)
        graph.node.append(copy)
        pairs[node.name] = [(o, f"{o}.gk_local") for o in node.output if o in floats]
        for ref, got in pairs[node.name]:
            for t in (ref, got):
                if t not in have:
                    graph.output.append(onnx.helper.make_tensor_value_info(t, FLOAT, None))
                    have.add(t)
    mode = "force_fp16" if config.mode == "allow_mix_precision" else config.mode
    local = dataclasses.replace(config, mode=mode, keep_dtype=originals, mixlist=None)
    return emulate(work, local), pairs


def _peak(value: np.ndarray) -> float:
    v = np.abs(np.asarray(value, dtype=np.float64))
    v = v[np.isfinite(v)]
    return float(v.max(initial=0.0))


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """max |candidate - reference| / max |reference|; ``inf`` where the candidate is not finite
    at a place the reference is (0 for an all-zero reference matched exactly)."""
    r = np.asarray(reference, dtype=np.float64)
    g = np.asarray(candidate, dtype=np.float64)
    if r.size == 0:
        return 0.0
    finite = np.isfinite(r)
    if not np.all(np.isfinite(g[finite])):
        return math.inf
    d = float(np.max(np.abs(g[finite] - r[finite]), initial=0.0))
    scale = float(np.max(np.abs(r[finite]), initial=0.0))
    if d == 0.0:
        return 0.0
    return d / scale if scale > 0 else math.inf


def keep_dtype_text(nodes: Sequence[str]) -> str:
    """``keep_dtype.cfg``: one node name of the emitted model per line (toolchain §1.5)."""
    return "".join(f"{n}\n" for n in nodes)


def render(advice: Advice, *, written: str | None = None) -> str:
    """The advisor's table, the flag to add and the emulation's note."""
    lines = [
        f"precision advisor: {advice.mode}, gate: {advice.gate}; {advice.candidates} node(s) compute "
        f"in fp16; {advice.checks} check(s)"
    ]
    before = advice.before
    assert before is not None
    lines.append(f"all in fp16: {_verdict(before)}")
    if advice.ranking:
        lines.append("ranked by error contribution (relative error a node adds over its inputs):")
        lines += [f"  {n:<40} {op:<20} {_num(c)}" for n, op, c in advice.ranking]
    if not advice.found:
        lines.append(
            "even with every node in fp32 the emulated model fails the gate: the error is not "
            "the fp16 nodes' (fp16 outputs, the gate itself); nothing written"
        )
    elif not advice.kept:
        lines.append("nothing to keep in fp32")
    else:
        assert advice.after is not None
        lines.append(f"keep in fp32: {len(advice.kept)} node(s): {_verdict(advice.after)}")
        lines += [f"  {n:<40} {op}" for n, op in zip(advice.kept, advice.kept_types)]
        if written:
            lines.append(f"wrote {written}")
        lines.append(
            f"ATC: add --keep_dtype={KEEP_DTYPE_FILE} to atc.sh, or put the file beside the recipe and add "
            f"`atc: {{extra_flags: {{keep_dtype: {KEEP_DTYPE_FILE}}}}}` to it (apply then writes both)"
        )
    lines.append(f"note: {advice.note}")
    return "\n".join(lines)


def _verdict(v: Verdict) -> str:
    return f"figure {_num(v.figure)}, " + ("passes" if v.ok else f"fails: {v.failure}")


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"


def as_json(advice: Advice, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out = advice.as_dict()
    for key in ("before", "after"):
        v = out[key]
        if v is not None:
            v["figure"] = None if not math.isfinite(v["figure"]) else v["figure"]
    out["ranking"] = [
        {"node": n, "op_type": op, "contribution": None if math.isinf(c) else c}
        for n, op, c in advice.ranking
    ]
    return out | dict(extra or {})
