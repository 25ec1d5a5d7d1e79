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

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import onnx

from graphkit.errors import ExpectationError
from graphkit.ir.proto import conv_spatial_rank, is_onnx_domain
from graphkit.recipe.conditions import PSEUDO_OPS, Condition


def op_counts(model: onnx.ModelProto) -> Counter[str]:
    """Node counts by op type (main graph), plus the Conv pseudo-ops by spatial rank."""
    inits = {t.name: t for t in model.graph.initializer}
    counts: Counter[str] = Counter()
    for node in model.graph.node:
        if not is_onnx_domain(node.domain):
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
    located: Mapping[str, Any] | None = None,
) -> None:
    """Raise ExpectationError when a pass's site count breaks its ``expect`` (``located``: the
    error's location fields, see :mod:`graphkit.errors`)."""
    cond = expected.get("sites")
    if cond is None or cond.holds(sites):
        return
    at = f", batch {batch}" if batch is not None else ""
    raise ExpectationError(
        f"{step_where}: pass '{pass_name}'{at} rewrote {sites} site(s), expected sites {cond}"
        + near_miss_text(near_misses, explains=explains),
        **(located or {}),
    )


def near_miss_text(near_misses: Sequence[tuple[str, str]], limit: int = 5, *, explains: bool = True) -> str:
    if not explains:
        return "; this pass does not report near-misses"
    if not near_misses:
        return "; no near-misses (the graph holds no candidate of this pass)"
    shown = "; ".join(f"{label or '<unnamed>'}: {why}" for label, why in near_misses[:limit])
    more = f" (+{len(near_misses) - limit} more in manifest.json)" if len(near_misses) > limit else ""
    return f"; near-misses: {shown}{more}"
