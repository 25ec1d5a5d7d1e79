"""``graphkit lint``: say, before ATC runs, what it will reject or handle badly.

The rules follow ``docs/ascend-toolchain.md`` §3 and the pre-ATC static checklist of §6; no CANN
install is needed. Each rule has a stable id (:data:`RULES`). A :class:`Finding` names the node,
says why ATC objects (with the error code where the doc gives one) and names the graphkit pass
that fixes it, where graphkit has one.

The rules read a weight-free copy of the model (:func:`graphkit.ir.proto.skeleton`) after onnx
shape inference; when inference fails they see the declared shapes only. The model given is
never modified.

This module builds that view, validates the ATC target, runs the checks, orders and renders
the findings (the command is :mod:`graphkit.cli.lint`). The checks themselves, and the
:class:`Finding` and view types
they share with this module, are in :mod:`graphkit.ascend.lint.rules`.
"""

from __future__ import annotations

import logging
from collections import ChainMap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import onnx

from graphkit._util import did_you_mean
from graphkit.ascend import ops
from graphkit.ascend.advice import check_warnings
from graphkit.ascend.flags import GEAR_FLAGS
from graphkit.ascend.lint.rules import (
    _CHECKS,
    ERROR,
    WARNING,
    Finding,
    _Site,
    _View,
)
from graphkit.ascend.settings import AtcSettings, validate_settings
from graphkit.errors import AtcConfigError, UsageError
from graphkit.ir.proto import dims, is_onnx_domain, skeleton

log = logging.getLogger("graphkit")


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # the worst severity the rule reports
    summary: str
    fix: str | None


_RULE_TABLE = (  # id, worst severity, fixing pass, summary
    ("unsupported-op", ERROR, None, "op types outside ATC's ONNX list: the 5.0.4 list for CANN < 6, "
     "else the 8.0.0 list (6.x/7.x have none published; 8.0.0 is the closest); foreign domains "
     "except the custom NPU ops; model-local functions; If/Loop/Scan bodies included"),
    ("opset", ERROR, None, "default-domain opset outside ATC's parsers (8-13 for CANN 5.x, 8-16 for "
     "6.0-6.2, 8-18 after); a warning outside 11-17"),
    ("dynamic-dim", ERROR, "set_batch_size", "graph input dims left dynamic that the gear flag "
     "does not cover"),
    ("topk-int64-arith", ERROR, None, "TopK/ArgMax/ArgMin indices reaching arithmetic with no Cast "
     "(E89999 int64 vs int32)"),
    ("resize-dynamic-scales", ERROR, "simplify", "Resize scales/sizes computed at run time"),
    ("pad-constant-value", ERROR, None, "constant-mode Pad whose value is not a constant 0"),
    ("pad-reflect", WARNING, None, "reflect-mode Pad (slow; Slice+Concat instead)"),
    ("wide-conv-kernel", WARNING, None, f"Conv kernel dims > {ops.WIDE_KERNEL} (slow; split it)"),
    ("avgpool-kernel", WARNING, None, f"AveragePool kernel dims > {ops.POOL_KERNEL} (ISA limit)"),
    ("empty-tensor", ERROR, "simplify", "zero-size tensors read as data, and empty Concat "
     "inputs; simplify where they are shape arithmetic"),
    ("conv1d-chain", WARNING, "conv1d_to_conv2d", "1-D Convs, one finding per connected chain"),
)  # fmt: skip
RULES: Mapping[str, Rule] = MappingProxyType({r[0]: Rule(r[0], r[1], r[3], r[2]) for r in _RULE_TABLE})


def _walk(view: _View, graph: onnx.GraphProto, outer: Mapping[str, Any], top: bool) -> None:
    local: dict[str, Any] = {t.name: t for t in graph.initializer}
    local.update({n.output[0]: n for n in graph.node if n.op_type == "Constant" and is_onnx_domain(n.domain)})
    scope = ChainMap(local, outer)  # inner names shadow outer ones, as ONNX scoping does
    index, view.graphs = view.graphs, view.graphs + 1
    if not top:  # the main graph's shapes are read in _view (after inference, as these)
        view.body_shapes.update(
            {vi.name: dims(vi) for vi in (*graph.input, *graph.value_info, *graph.output)}
        )
        view.body_shapes.update({t.name: list(t.dims) for t in graph.initializer})
    for node in graph.node:
        view.sites.append(_Site(len(view.sites), node, scope, top, index))
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                _walk(view, sub, scope, False)


def _view(model: onnx.ModelProto, soc: str, cann: tuple[int, int], gear: str | None) -> _View:
    sk = skeleton(model)
    try:  # not proto.infer_shapes: we want the failure logged and the subgraphs' value_info kept
        sk = onnx.shape_inference.infer_shapes(sk, data_prop=True)
    except Exception as exc:  # inference is advisory; any failure just leaves declared shapes
        log.warning("lint: shape inference failed (%s); shape rules see declared shapes only", exc)
    g = sk.graph
    opset = next((o.version for o in sk.opset_import if is_onnx_domain(o.domain)), None)
    view = _View(g, opset, cann, soc, gear, frozenset((f.domain, f.name) for f in sk.functions))
    _walk(view, g, {}, True)
    view.shapes.update({vi.name: dims(vi) for vi in (*g.input, *g.value_info, *g.output)})
    view.shapes.update({t.name: list(t.dims) for t in g.initializer})
    for site in (s for s in view.sites if s.top):
        view.producer.update({out: site for out in site.node.output if out})
        for i, name in enumerate(site.node.input):
            view.consumers.setdefault(name, []).append((site, i))
    return view


def _target(soc: str, cann: str, gear: str | None) -> tuple[int, int]:
    """Validate the ATC target as a recipe's ``atc:`` block is validated; CANN (major, minor)."""
    if gear is not None and gear not in GEAR_FLAGS:
        raise UsageError(
            f"lint: unknown gear '{gear}'{did_you_mean(gear, GEAR_FLAGS)}; known: {', '.join(GEAR_FLAGS)}"
        )
    settings = AtcSettings(soc_version=soc, cann_version=cann)
    try:
        validate_settings(settings, where="lint")
    except AtcConfigError as exc:
        raise UsageError(str(exc)) from None
    for warning in check_warnings(settings, where="lint"):
        log.warning("%s", warning)
    major, minor = cann.split(".")[:2]  # validate_settings has checked the form
    return int(major), int(minor)


def lint_model(
    model: onnx.ModelProto,
    *,
    soc: str = "Ascend310P3",
    cann: str = "8.0",
    gear: str | None = None,
    ignore: Collection[str] = (),
) -> list[Finding]:
    """Every finding of the rules not in ``ignore``: errors first, then in graph order."""
    ignore = (ignore,) if isinstance(ignore, str) else ignore  # one id, not its characters
    for rule in ignore:
        if rule not in RULES:
            known = ", ".join(RULES)
            raise UsageError(f"lint: unknown rule id '{rule}'{did_you_mean(rule, RULES)}; known: {known}")
    view = _view(model, soc, _target(soc, cann, gear), gear)
    found: list[tuple[int, Finding]] = []
    for check in dict.fromkeys(_CHECKS[r] for r in RULES if r not in ignore):  # shared checks once
        found.extend(f for f in check(view) if f[1].rule not in ignore)
    found.sort(key=lambda f: (f[1].severity != ERROR, f[0]))
    return [f for _, f in found]


def lint_report(
    findings: Sequence[Finding], *, soc: str, cann: str, gear: str | None, ignore: Collection[str] = ()
) -> dict[str, Any]:
    """What ``graphkit lint --json`` prints of a run (the CLI adds the model and environment):
    the ATC target it checked for, the rules skipped, the counts and the findings."""
    errors = sum(f.severity == ERROR for f in findings)
    return {
        "target": {"soc": soc, "cann": cann, "gear": gear},
        "ignored": list(ignore),
        "errors": errors,
        "warnings": len(findings) - errors,
        "findings": [f.as_dict() for f in findings],
    }


def render(findings: Sequence[Finding]) -> str:
    """A table, one finding a line (the long message last), and a count line."""
    head = ("SEVERITY", "RULE", "NODE", "OP", "FIX", "MESSAGE")
    rows = [(f.severity, f.rule, f.node or "-", f.op_type or "-", f.fix or "-", f.message) for f in findings]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(5)]
    lines = (
        ["  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[5]]) for r in (head, *rows)] if rows else []
    )
    errors = sum(f.severity == ERROR for f in findings)
    warnings = len(findings) - errors
    lines.append(f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    return "\n".join(lines)
