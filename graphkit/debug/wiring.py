"""Which names that models A and B share hold one quantity (``graphkit compare``, model vs model).

A rewrite may keep a tensor's name for another value (onnxsim folds a BN into the Conv before it:
the Conv's name now holds the value after the BN). :func:`rewritten` tells from the wiring
around the name, the :class:`Site` that :mod:`graphkit.debug.compare_run` reads of each model;
:mod:`graphkit.debug.compare` then reports such a name as "rewritten", not abnormal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Operand = tuple[str, ...]  # ("data",), ("self",), ("absent",) or ("const", name, value digest)
Use = tuple[str, tuple[Operand, ...]]  # a node: op type (":k" for output k > 0) and its inputs


@dataclass(frozen=True)
class Site:
    """Where a tensor's value is made and read in its model, seen through the nodes that keep
    values (Identity, Squeeze, Unsqueeze, Dropout): the producer ("graph input x" or "constant"
    for those) and the nodes that read the value (Shape and Size read none and are left out)."""

    producer: Use
    readers: tuple[Use, ...]


def rewritten(a: Site | None, b: Site | None) -> str:
    """Why a name of both A and B holds another quantity in B; "" when nothing says so.

    The name is one quantity when its producer and its readers are the same nodes in both
    models: the same op type (and output), as many inputs, and the same constant wherever both
    read one (the same name, or the same values under another: a copy, a lifted copy). Data
    inputs count by position only: a rewrite upstream may rename what flows in, not its value.
    Values and attributes are what compare judges: a weight perturbed under its own name is a
    divergence, a folded one (new name, new values) a rewrite. The rule is local, so the
    tensors after a fusion are judged again.
    """
    if a is None or b is None:
        return ""
    why = []
    if not _same_use(a.producer, b.producer):
        why.append(f"produced by {_use_text(a.producer)} in A, {_use_text(b.producer)} in B")
    if not (_covered(a.readers, b.readers) and _covered(b.readers, a.readers)):
        ra, rb = (", ".join(sorted({_use_text(u) for u in s.readers})) or "nothing" for s in (a, b))
        why.append(f"read by {ra} in A, {rb} in B")
    return "; ".join(why)


def _same_use(a: Use, b: Use) -> bool:
    return a[0] == b[0] and len(a[1]) == len(b[1]) and all(map(_same_operand, a[1], b[1]))


def _same_operand(x: Operand, y: Operand) -> bool:
    if x[0] == y[0] == "const":
        return x[1] == y[1] or x[2] == y[2]
    # data on one side, a constant on the other: a subgraph folded (a Reshape's computed shape)
    return x[0] == y[0] or {x[0], y[0]} == {"data", "const"}


def _covered(uses: Sequence[Use], by: Sequence[Use]) -> bool:
    return all(any(_same_use(u, v) for v in by) for u in uses)


def _use_text(u: Use) -> str:
    args = ("-" if o[0] == "absent" else o[1] if o[0] == "const" else "·" for o in u[1])
    return f"{u[0]}({', '.join(args)})" if u[1] else u[0]
