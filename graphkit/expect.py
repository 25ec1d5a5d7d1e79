"""Recipe expectations: what a pass must have rewritten, and what the final graph must hold.

Per pass step ``expect: {sites: ">= 4"}`` checks the number of sites the pass reports; a pass
that silently does nothing then fails loudly, with the near-misses it could explain (the
candidates it looked at and why each did not match). For the final graph, ``expect_ops``
bounds op counts::

    expect_ops:
      Conv1d: 0          # no 1-D convolution left (ATC wraps each in layout conversions)
      ScatterND: 0
      Conv: ">= 29"

A condition is an integer (``== n``) or a string ``"<op> n"`` with op one of ``== != >= <= > <``.
Op names are ONNX op types of the default domain, or the pseudo-ops ``Conv1d`` / ``Conv2d`` /
``Conv3d`` (a Conv by the rank of its weight, or of its kernel_shape). A typo is an error,
never a silently true expectation.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import onnx

from graphkit.errors import ExpectationError

_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_COND_RE = re.compile(r"^\s*(==|!=|>=|<=|>|<)?\s*(\d+)\s*$")
PSEUDO_OPS = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3}  # spatial rank of the Conv
STEP_KEYS = ("sites",)


@dataclass(frozen=True)
class Condition:
    op: str
    value: int

    def holds(self, count: int) -> bool:
        return _OPS[self.op](count, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value}"


def parse_condition(value: object) -> Condition:
    """``3`` → ``== 3``; ``">= 4"`` → ``>= 4``. Raises ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError(f"expected a count or a condition like '>= 4', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count cannot be negative ({value})")
        return Condition("==", value)
    if isinstance(value, str):
        m = _COND_RE.match(value)
        if m:
            return Condition(m.group(1) or "==", int(m.group(2)))
    raise ValueError(f"expected a count or a condition like '>= 4' (==, !=, >=, <=, >, <), got {value!r}")


def known_op(name: str) -> bool:
    return name in PSEUDO_OPS or onnx.defs.has(name)


def op_counts(model: onnx.ModelProto) -> Counter[str]:
    """Node counts by op type (main graph), plus the Conv pseudo-ops by spatial rank."""
    from graphkit.graph import conv_spatial_rank  # recipes load without onnx-graphsurgeon

    inits = {t.name: t for t in model.graph.initializer}
    counts: Counter[str] = Counter()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            counts[f"{node.domain}.{node.op_type}"] += 1
            continue
        counts[node.op_type] += 1
        if node.op_type == "Conv":
            spatial = conv_spatial_rank(node, inits)
            if spatial in PSEUDO_OPS.values():
                counts[f"Conv{spatial}d"] += 1
    return counts


def check_ops(model: onnx.ModelProto, expected: Mapping[str, Condition], where: str) -> None:
    """Raise ExpectationError listing every ``expect_ops`` condition the model breaks."""
    counts = op_counts(model)
    broken = [
        f"{op} is {counts[op]} (expected {cond})"
        for op, cond in expected.items()
        if not cond.holds(counts[op])
    ]
    if broken:
        raise ExpectationError(f"{where}: expect_ops: {'; '.join(broken)}")


def check_sites(
    step_where: str,
    pass_name: str,
    sites: int,
    expected: Mapping[str, Condition],
    near_misses: Sequence[tuple[str, str]],
    batch: int | None = None,
    *,
    explains: bool = True,
) -> None:
    """Raise ExpectationError when a pass's site count breaks its ``expect``."""
    cond = expected.get("sites")
    if cond is None or cond.holds(sites):
        return
    at = f", batch {batch}" if batch is not None else ""
    raise ExpectationError(
        f"{step_where}: pass '{pass_name}'{at} rewrote {sites} site(s), expected sites {cond}"
        + near_miss_text(near_misses, explains=explains)
    )


def near_miss_text(near_misses: Sequence[tuple[str, str]], limit: int = 5, *, explains: bool = True) -> str:
    if not explains:
        return "; this pass does not report near-misses"
    if not near_misses:
        return "; no near-misses (the graph holds no candidate of this pass)"
    shown = "; ".join(f"{label or '<unnamed>'}: {why}" for label, why in near_misses[:limit])
    more = f" (+{len(near_misses) - limit} more in manifest.json)" if len(near_misses) > limit else ""
    return f"; near-misses: {shown}{more}"
