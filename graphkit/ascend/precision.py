"""What the NPU will compute: ATC's precision modes emulated on onnxruntime CPU.

:func:`emulate` returns a copy of an emitted model whose numbers are the ones an OM compiled with
``--precision_mode=MODE`` computes, as far as rounding goes:

* a node that runs in fp16 gets fp16 inputs: its float weights are rounded to fp16 and every
  float input that comes from outside fp16 (a model input, a node kept in fp32) goes through a
  ``Cast(to=FLOAT16)``/``Cast(to=FLOAT)`` pair; its float outputs are rounded the same way;
* Conv, ConvTranspose, MatMul and Gemm (the Cube unit) multiply the fp16 values and accumulate in
  fp32, as Ascend's Cube does; onnxruntime computes every other op in fp32 on the fp16 inputs and
  rounds its output, which is where the emulation stops being exact (see :data:`NOTE`);
* an op that only moves or selects values (Reshape, Transpose, Concat, Relu, MaxPool, TopK…)
  is exact in either dtype: it runs in the dtype its inputs come in and rounds nothing itself,
  so keeping every other node in fp32 gives the fp32 model back exactly.

Modes (``../shared/docs/ascend-toolchain.md`` §1.5): ``force_fp16`` (every float op in fp16, the
inference default), ``allow_fp32_to_fp16`` (the Cube ops in fp16, the rest keeps fp32),
``force_fp32`` ≡ ``cube_fp16in_fp32out`` (Cube ops take fp16 inputs and give fp32 outputs),
``allow_mix_precision`` (the white list in fp16, the black list in fp32, the gray ops follow
their inputs; ``modify_mixlist`` adds and removes Ascend IR types) and ``must_keep_origin_dtype``
(nothing changes). ``keep_dtype`` entries (node names, or ``OpType::<Ascend type>``) stay fp32 in
every mode.

:func:`fp16_issues` runs the emulated model and reports, per tensor and naming its node, the
values fp16 cannot hold: an overflow (|x| > 65504 becomes inf; a variance or a sum of squares is
the classic case) or an underflow (significant values flushed to zero).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphkit.ascend.ops import ONNX_TO_ASCEND
from graphkit.errors import UsageError
from graphkit.ir.proto import infer_shapes, skeleton

log = logging.getLogger("graphkit")

MODES = ("force_fp16", "allow_fp32_to_fp16", "allow_mix_precision", "must_keep_origin_dtype", "force_fp32")
_V2 = {  # precision_mode_v2 and aliases → the mode emulated
    "fp16": "force_fp16",
    "origin": "must_keep_origin_dtype",
    "cube_fp16in_fp32out": "force_fp32",
    "mixed_float16": "allow_mix_precision",
    "allow_mix_precision_fp16": "allow_mix_precision",
}
NOTE = (
    "emulated on CPU with onnxruntime, not measured on an NPU: weights and the tensors between ops "
    "rounded to fp16, Conv/MatMul/Gemm accumulating in fp32; not modelled: the fp16 steps inside "
    "vector units' kernels, implmode approximations (e.g. Sigmoid high_performance), ATC's fusions"
)
FP16_MAX = 65504.0
FP16_TINY = 2.0**-25  # below this an fp32 value rounds to zero in fp16
FP16_MIN_NORMAL = 2.0**-14

CUBE = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
# Exact in fp16 when their inputs are fp16: they move, select or compare values, never round.
EXACT = frozenset(
    {
        "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split",
        "Slice", "Gather", "GatherElements", "GatherND", "Expand", "Tile", "Pad", "Relu", "Abs",
        "Neg", "Max", "Min", "MaxPool", "GlobalMaxPool", "ReduceMax", "ReduceMin", "Where",
        "DepthToSpace", "SpaceToDepth", "Dropout", "ScatterND", "ScatterElements", "TopK", "Sign",
    }
)  # fmt: skip
# allow_mix_precision without a modify_mixlist: an approximation of the built-in lists
# (opp/.../aic-<soc>-ops-info.json, precision_reduce) by ONNX op: the Cube ops in fp16, the ops
# whose fp16 result is known to go wrong (exponentials, logs, powers, reductions, norms) in fp32.
MIX_WHITE = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
MIX_BLACK = frozenset(
    {
        "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "Softmax", "LogSoftmax", "ReduceSum", "ReduceMean",
        "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "LpNormalization",
        "BatchNormalization", "InstanceNormalization", "LayerNormalization", "Erf", "CumSum",
    }
)  # fmt: skip


@dataclass(frozen=True)
class PrecisionConfig:
    """What ATC is told: ``mode``, the ``keep_dtype`` entries, a ``modify_mixlist`` JSON and
    whether ``--output_type=FP32`` is set (it changes the outputs' dtype on the NPU, not their
    values, which an fp16 op has already rounded; the emulated model always returns float32)."""

    mode: str = "force_fp16"
    keep_dtype: frozenset[str] = frozenset()
    mixlist: Mapping[str, Any] | None = None
    fp32_outputs: bool = False

    def __post_init__(self) -> None:
        mode = _V2.get(self.mode, self.mode)
        if mode not in MODES:
            raise UsageError(f"precision mode '{self.mode}': emulated modes are {', '.join(MODES)}")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "keep_dtype", frozenset(self.keep_dtype))

    @classmethod
    def from_atc(cls, settings: Any, base: Path | None = None) -> PrecisionConfig:
        """The config of a recipe's ``atc`` settings: ``precision_mode[_v2]`` (default
        force_fp16, ATC's inference default), and ``keep_dtype``, ``modify_mixlist`` and
        ``output_type`` from its flags (files relative to ``base``)."""
        flags = dict(getattr(settings, "extra_flags", None) or {})
        mode = getattr(settings, "precision_mode", None) or getattr(settings, "precision_mode_v2", None)
        keep = flags.get("keep_dtype") or getattr(settings, "keep_dtype", None)
        mix = flags.get("modify_mixlist") or getattr(settings, "modify_mixlist", None)
        out = str(flags.get("output_type") or getattr(settings, "output_type", None) or "")
        return cls(
            mode or "force_fp16",
            frozenset(read_keep_dtype(_path(keep, base))) if keep else frozenset(),
            json.loads(_path(mix, base).read_text("utf-8")) if mix else None,
            out.upper() == "FP32",
        )


def _path(name: Any, base: Path | None) -> Path:
    path = Path(str(name))
    return path if path.is_absolute() or base is None else base / path


def read_keep_dtype(path: Path) -> list[str]:
    """The entries of a keep_dtype file: one node name or ``OpType::<type>`` per line."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the keep_dtype file ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _kept(node: onnx.NodeProto, keep: frozenset[str]) -> bool:
    if node.name and node.name in keep:
        return True
    return (
        f"OpType::{ONNX_TO_ASCEND.get(node.op_type, node.op_type)}" in keep
        or f"OpType::{node.op_type}" in keep
    )


def _mix_lists(mixlist: Mapping[str, Any] | None) -> tuple[set[str], set[str]]:
    """(white, black) ONNX op types after ``modify_mixlist`` (which names Ascend IR types)."""
    white, black = set(MIX_WHITE), set(MIX_BLACK)
    to_onnx = {v: k for k, v in ONNX_TO_ASCEND.items()}
    for key, target in (("white-list", white), ("black-list", black)):
        entry = (mixlist or {}).get(key) or {}
        for op in entry.get("to-add", []):
            target.add(to_onnx.get(op, op))
            (black if target is white else white).discard(to_onnx.get(op, op))
        for op in entry.get("to-remove", []):
            target.discard(to_onnx.get(op, op))
    return white, black


@dataclass
class _Plan:
    """Per node: 'fp16' (inputs and outputs rounded), 'cube_in' (inputs only), or 'fp32'."""

    kind: dict[int, str] = field(default_factory=dict)
    floats: set[str] = field(default_factory=set)  # names of float32 tensors


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    inferred = infer_shapes(skeleton(model))
    g = inferred.graph
    out = {
        vi.name
        for vi in [*g.input, *g.value_info, *g.output]
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    out |= {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    for node in model.graph.node:  # a Constant's value is known without inference
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    out.add(node.output[0])
    return out


def plan(model: onnx.ModelProto, config: PrecisionConfig) -> _Plan:
    """How each node of the main graph computes under ``config``."""
    p = _Plan(floats=_float_tensors(model))
    white, black = _mix_lists(config.mixlist)
    fp16_tensors: set[str] = set()
    for i, node in enumerate(model.graph.node):
        computes_float = any(o in p.floats for o in node.output)
        if not computes_float or _kept(node, config.keep_dtype) or config.mode == "must_keep_origin_dtype":
            kind = "fp32"
        elif node.op_type in EXACT:  # moves or selects values: in the dtype its inputs come in
            kind = "fp16" if any(x in fp16_tensors for x in node.input) else "fp32"
        elif config.mode == "force_fp16":
            kind = "fp16"
        elif config.mode in ("allow_fp32_to_fp16", "force_fp32"):
            kind = (
                ("fp16" if config.mode == "allow_fp32_to_fp16" else "cube_in")
                if node.op_type in CUBE
                else "fp32"
            )
        elif node.op_type in white:
            kind = "fp16"
        elif node.op_type in black:
            kind = "fp32"
        else:  # gray: follows its float inputs
            kind = "fp16" if any(x in fp16_tensors for x in node.input) else "fp32"
        p.kind[i] = kind
        if kind == "fp16":
            fp16_tensors.update(o for o in node.output if o in p.floats)
    return p


def fp16_nodes(model: onnx.ModelProto, config: PrecisionConfig) -> list[str]:
    """Named nodes that compute in fp16 under ``config`` and whose result fp16 can change (the
    candidates for keep_dtype), in graph order."""
    p = plan(model, config)
    nodes = model.graph.node
    return [
        nodes[i].name
        for i, kind in p.kind.items()
        if kind != "fp32" and nodes[i].name and nodes[i].op_type not in EXACT
    ]


def emulate(model: onnx.ModelProto, config: PrecisionConfig, *, probes: bool = False) -> onnx.ModelProto:
    """A copy of ``model`` computing ATC's numerics under ``config`` (see the module's text).
    ``probes``: also output, per rounded tensor, its largest |value| before rounding and the
    counts of non-zero values and of values fp16 flushes to zero (for :func:`fp16_issues`)."""
    p = plan(model, config)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(g.node):
        for x in node.input:
            readers.setdefault(x, []).append(i)
    rounded: set[str] = set()  # tensors whose values are fp16 already
    new_nodes: list[onnx.NodeProto] = []
    probed: list[tuple[str, str, str]] = []  # (tensor before rounding, node, op)

    def round_pair(src: str, dst: str, where: str, op: str) -> None:
        new_nodes.append(helper.make_node("Cast", [src], [f"{dst}.gk16"], to=TensorProto.FLOAT16))
        new_nodes.append(helper.make_node("Cast", [f"{dst}.gk16"], [dst], to=TensorProto.FLOAT))
        probed.append((src, where, op))

    for i, node in enumerate(list(g.node)):
        kind = p.kind[i]
        if kind != "fp32":
            for k, x in enumerate(node.input):
                if not x or x not in p.floats or x in rounded:
                    continue
                if x in inits:
                    node.input[k] = _rounded_initializer(g, inits, x, readers, p.kind)
                else:  # rounded once, however many fp16 nodes read it
                    if f"{x}.gk_in16" not in rounded:
                        round_pair(x, f"{x}.gk_in16", node.name, node.op_type)
                        rounded.add(f"{x}.gk_in16")
                    node.input[k] = f"{x}.gk_in16"
        new_nodes.append(node)
        if kind != "fp16":
            continue
        exact = node.op_type in EXACT and all(x in rounded or x not in p.floats for x in node.input if x)
        for k, y in enumerate(node.output):
            if y not in p.floats:
                continue
            if not exact:
                node.output[k] = f"{y}.gk32"
                round_pair(f"{y}.gk32", y, node.name, node.op_type)
            rounded.add(y)
    del g.node[:]
    g.node.extend(new_nodes)
    if probes:
        _add_probes(g, probed)
    return out


def _rounded_initializer(g: onnx.GraphProto, inits: dict, name: str, readers: dict, kind: dict) -> str:
    """The fp16-rounded weights: in place where every reader rounds them, else a copy."""
    value = numpy_helper.to_array(inits[name])
    with np.errstate(over="ignore"):  # |w| > 65504 becomes inf, as on the NPU (fp16_issues says so)
        rounded = value.astype(np.float16).astype(np.float32)
    if np.array_equal(rounded, value, equal_nan=True):
        return name
    if all(kind.get(i) != "fp32" for i in readers.get(name, [])) and name not in {o.name for o in g.output}:
        inits[name].CopyFrom(numpy_helper.from_array(rounded, name))
        return name
    copy = f"{name}.gk16"
    if copy not in inits:
        t = numpy_helper.from_array(rounded, copy)
        g.initializer.append(t)
        inits[copy] = t
    return copy


PROBE = "gk_probe"  # prefix of the probe outputs: gk_probe<i>_max, _nonzero, _flushed


def _add_probes(g: onnx.GraphProto, probed: list[tuple[str, str, str]]) -> None:
    g.initializer.append(numpy_helper.from_array(np.array(FP16_TINY, np.float32), f"{PROBE}_tiny"))
    g.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), f"{PROBE}_zero"))
    for j, (src, _, _) in enumerate(probed):
        p = f"{PROBE}{j}"
        a, nz, small = f"{p}_abs", f"{p}_nz", f"{p}_small"
        g.node.extend(
            [
                helper.make_node("Abs", [src], [a]),
                helper.make_node("ReduceMax", [a], [f"{p}_max"], keepdims=0),
                helper.make_node("Greater", [a, f"{PROBE}_zero"], [nz]),
                helper.make_node("Less", [a, f"{PROBE}_tiny"], [small]),
                helper.make_node("And", [nz, small], [f"{p}_fl"]),
                helper.make_node("Cast", [nz], [f"{p}_nzf"], to=TensorProto.FLOAT),
                helper.make_node("Cast", [f"{p}_fl"], [f"{p}_flf"], to=TensorProto.FLOAT),
                helper.make_node("ReduceSum", [f"{p}_nzf"], [f"{p}_nonzero"], keepdims=0),
                helper.make_node("ReduceSum", [f"{p}_flf"], [f"{p}_flushed"], keepdims=0),
            ]
        )
        for name in ("max", "nonzero", "flushed"):
            g.output.append(helper.make_tensor_value_info(f"{p}_{name}", TensorProto.FLOAT, []))


@dataclass
class TensorIssue:
    tensor: str
    node: str
    op_type: str
    kind: str  # "overflow" | "underflow"
    max_abs: float
    count: int  # values that overflow (all, when the max does), or that flush to zero
    fraction: float

    def describe(self) -> str:
        what = (
            f"max |x| {self.max_abs:.4g} > {FP16_MAX:g}: becomes inf in fp16"
            if self.kind == "overflow"
            else f"{self.count} non-zero values ({self.fraction:.1%}) flush to zero in fp16"
        )
        return f"{self.tensor} ({self.op_type} {self.node or '(unnamed)'}): {what}"


def fp16_issues(
    model: onnx.ModelProto,
    config: PrecisionConfig,
    feed: Mapping[str, np.ndarray],
    *,
    flush_limit: float = 0.01,
) -> list[TensorIssue]:
    """Tensors of fp16 nodes whose values fp16 cannot hold on ``feed``: an overflow, or more than
    ``flush_limit`` of their non-zero values flushed to zero."""
    from graphkit.ir.ort import run_model

    probed = emulate(model, config, probes=True)
    sources = _probe_sources(probed)
    names = [f"{PROBE}{j}_{k}" for j in range(len(sources)) for k in ("max", "nonzero", "flushed")]
    (values,) = run_model(probed, [dict(feed)], names)
    issues = _weight_issues(model, config, flush_limit)
    for j, (src, node, op) in enumerate(sources):
        mx, nonzero, flushed = (float(values[f"{PROBE}{j}_{k}"]) for k in ("max", "nonzero", "flushed"))
        tensor = src.removesuffix(".gk32")
        if not np.isfinite(mx) or mx > FP16_MAX:
            issues.append(TensorIssue(tensor, node, op, "overflow", mx, int(nonzero), 1.0))
        elif nonzero and flushed / nonzero > flush_limit:
            issues.append(TensorIssue(tensor, node, op, "underflow", mx, int(flushed), flushed / nonzero))
    return issues


def _weight_issues(model: onnx.ModelProto, config: PrecisionConfig, flush_limit: float) -> list[TensorIssue]:
    """Weights of fp16 nodes that fp16 cannot hold (found without running the model)."""
    p = plan(model, config)
    inits = {t.name: t for t in model.graph.initializer}
    issues, seen = [], set()
    for i, node in enumerate(model.graph.node):
        if p.kind[i] == "fp32":
            continue
        for x in node.input:
            if x not in inits or x in seen or inits[x].data_type != TensorProto.FLOAT:
                continue
            seen.add(x)
            w = np.abs(numpy_helper.to_array(inits[x]))
            mx, nonzero = float(w.max(initial=0.0)), int(np.count_nonzero(w))
            flushed = int(np.count_nonzero((w > 0) & (w < FP16_TINY)))
            if mx > FP16_MAX:
                issues.append(
                    TensorIssue(x, node.name, node.op_type, "overflow", mx, int(np.sum(w > FP16_MAX)), 1.0)
                )
            elif nonzero and flushed / nonzero > flush_limit:
                issues.append(
                    TensorIssue(x, node.name, node.op_type, "underflow", mx, flushed, flushed / nonzero)
                )
    return issues


def _probe_sources(model: onnx.ModelProto) -> list[tuple[str, str, str]]:
    """(tensor before rounding, node, op) of every probe, from the Abs nodes that read them."""
    producers = {o: n for n in model.graph.node for o in n.output}
    out = []
    for n in model.graph.node:
        if n.op_type == "Abs" and n.output[0].startswith(PROBE) and n.output[0].endswith("_abs"):
            src = n.input[0]
            base = src.removesuffix(".gk32")
            producer = producers.get(src) or producers.get(base)
            reader = (
                next((m for m in model.graph.node if f"{base}.gk_in16" in m.input), None)
                if producer is None
                else None
            )
            who = producer or reader
            out.append((src, who.name if who else "", who.op_type if who else "input"))
    return out


def describe(issues: Iterable[TensorIssue]) -> list[str]:
    return [i.describe() for i in issues]
