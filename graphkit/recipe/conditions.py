"""Conditions on counts, as recipes write them: ``3`` (== 3) or ``">= 4"``.

Per pass step ``expect: {sites: ">= 4"}`` bounds the sites a pass rewrites; ``expect_ops``
bounds op counts of every final model. A condition is an integer (``== n``) or a string
``"<op> n"`` with op one of ``== != >= <= > <``. Op names are ONNX op types of the default
domain, or the pseudo-ops ``Conv1d`` / ``Conv2d`` / ``Conv3d`` (a Conv by its spatial rank). A
typo is an error, never a silently true expectation.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

import onnx

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
