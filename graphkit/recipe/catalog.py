"""What a recipe is validated against: the passes, the lint rule ids and the built-in models.

Validation (:mod:`graphkit.recipe.validate`) takes these as data, so it imports no pass, no
onnx-graphsurgeon and no networkx; :func:`default_catalog` gathers the installed ones.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class PassLike(Protocol):
    """What validation needs of a pass: its registered name and a parameter check."""

    name: str

    def check_params(self, params: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The parameters with defaults filled in; a PassError names what is wrong."""
        ...


class PassTable(Protocol):
    """Passes by name (built-in, entry point, or ``module:function``); a PassError for an
    unknown one (:class:`graphkit.passes.PassRegistry` is one)."""

    def get(self, name: str) -> PassLike: ...


@dataclass(frozen=True)
class Catalog:
    passes: PassTable
    lint_rules: Collection[str]  # rule ids the recipe's lint.ignore may name
    models: Collection[str]  # built-in model names source.model may name


def default_catalog(passes: PassTable | None = None) -> Catalog:
    """The installed passes (or ``passes``), graphkit lint's rules and the built-in models."""
    from graphkit.ascend.lint import RULES
    from graphkit.models import BUILTIN_MODELS
    from graphkit.passes import PassRegistry

    return Catalog(passes or PassRegistry(), tuple(RULES), tuple(BUILTIN_MODELS))
