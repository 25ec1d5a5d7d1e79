"""The pass contract and the registry that finds passes.

A pass is a function ``fn(graph: gs.Graph, *, param: T = default, ...) -> int | PassResult``.
It edits the graph it is given in place (the manager hands every pass a fresh graph imported
from the previous model, so nothing leaks between passes), never opens files, never runs
inference, never prints, and returns how many sites it rewrote. Graphs handed to passes carry
inferred shapes; the manager removes dead nodes and re-sorts after each pass.

``@register_pass(name, contract=...)`` attaches a :class:`PassSpec` to the function; nothing
global is mutated. :class:`PassRegistry` finds passes in three places: the built-in modules
of :mod:`graphkit.passes`, the ``graphkit.passes`` entry-point group, and ``module:function``
references written in a recipe.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from graphkit.errors import PassError

ENTRY_POINT_GROUP = "graphkit.passes"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Contract:
    """What a pass promises about the numbers.

    ``exact``: the rewrite is an identity of the maths; only the executor's summation order may
    differ, so the recipe's tolerances apply. ``fp_reorder``: the rewrite reorders floating-point
    work; it may add up to ``tolerance`` (max abs) on top of the recipe's tolerances.
    ``approximate``: the rewrite changes numbers by design; parity is measured and reported, a
    breach is a warning unless the recipe asks for ``parity.strict_approximate``.
    """

    kind: Literal["exact", "fp_reorder", "approximate"]
    tolerance: float = 0.0

    def __str__(self) -> str:
        return f"fp_reorder({self.tolerance:g})" if self.kind == "fp_reorder" else self.kind


EXACT = Contract("exact")
APPROXIMATE = Contract("approximate")


def fp_reorder(tolerance: float) -> Contract:
    if not tolerance > 0:
        raise ValueError("fp_reorder needs a positive tolerance")
    return Contract("fp_reorder", float(tolerance))


@dataclass
class PassResult:
    """What a pass reports. ``atc`` carries ATC settings a pass asks for (``set_implmode``)."""

    sites: int
    atc: Mapping[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        kind = _type_name(self.annotation)
        return f"{self.name}: {kind}" + ("" if self.required else f" = {self.default!r}")


@dataclass(frozen=True)
class PassSpec:
    name: str
    fn: Callable[..., int | PassResult]
    contract: Contract
    params: Mapping[str, Param]

    @property
    def doc(self) -> str:
        """The first line of the pass's docstring."""
        return (inspect.getdoc(self.fn) or "").strip().splitlines()[0] if self.fn.__doc__ else ""

    def check_params(self, params: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Validate recipe parameters against the signature; return them with defaults filled."""
        from graphkit.suggest import did_you_mean

        out: dict[str, Any] = {}
        for key, value in params.items():
            if key not in self.params:
                raise PassError(
                    f"{where}: pass '{self.name}' has no parameter '{key}'"
                    f"{did_you_mean(key, self.params)}"
                    f" (parameters: {', '.join(self.params) or 'none'})"
                )
            param = self.params[key]
            problem = type_problem(param.annotation, value)
            if problem:
                raise PassError(f"{where}.{key}: {problem} (expected {_type_name(param.annotation)})")
            out[key] = value
        for param in self.params.values():
            if param.name not in out:
                if param.required:
                    raise PassError(f"{where}: pass '{self.name}' needs parameter '{param.name}'")
                out[param.name] = param.default
        return out

    def run(self, graph: Any, params: Mapping[str, Any]) -> PassResult:
        result = self.fn(graph, **params)
        if isinstance(result, PassResult):
            return result
        if isinstance(result, bool) or not isinstance(result, int):
            raise PassError(
                f"pass '{self.name}' returned {type(result).__name__}; a pass returns the number "
                "of sites it rewrote (int) or a PassResult"
            )
        return PassResult(sites=result)


def register_pass(
    name: str, *, contract: Contract = EXACT
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a function as a graphkit pass under a stable snake_case ``name``."""
    if not _NAME_RE.match(name):
        raise ValueError(f"pass name {name!r} is not snake_case")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.pass_spec = PassSpec(name, fn, contract, _params_of(fn, name))  # type: ignore[attr-defined]
        return fn

    return decorate


def _params_of(fn: Callable[..., Any], name: str) -> dict[str, Param]:
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    items = list(sig.parameters.values())
    if not items or items[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"pass {name!r}: the first parameter must be the graph")
    params = {}
    for p in items[1:]:
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"pass {name!r}: parameter {p.name!r} must be keyword-only")
        if p.name not in hints:
            raise TypeError(f"pass {name!r}: parameter {p.name!r} needs a type annotation")
        params[p.name] = Param(p.name, hints[p.name], p.default)
    return params


def spec_of(obj: Any) -> PassSpec | None:
    spec = getattr(obj, "pass_spec", None)
    return spec if isinstance(spec, PassSpec) else None


class PassRegistry:
    """Finds passes by name: built-ins, entry points, then ``module:function`` references."""

    def __init__(self, extra: Sequence[PassSpec] = ()) -> None:
        self._specs: dict[str, PassSpec] = {}
        from graphkit.passes import BUILTIN_MODULES

        for module_name in BUILTIN_MODULES:
            self._add_module(importlib.import_module(module_name))
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                spec = spec_of(ep.load())
            except Exception as exc:  # a broken plugin must not hide the built-ins
                raise PassError(f"entry point '{ep.name}' ({ep.value}) failed to load: {exc}") from exc
            if spec is None:
                raise PassError(f"entry point '{ep.name}' ({ep.value}) is not a @register_pass function")
            self._add(spec)
        for spec in extra:
            self._add(spec)

    def _add_module(self, module: Any) -> None:
        for obj in vars(module).values():
            spec = spec_of(obj)
            if spec is not None and obj.__module__ == module.__name__:
                self._add(spec)

    def _add(self, spec: PassSpec) -> None:
        if spec.name in self._specs and self._specs[spec.name].fn is not spec.fn:
            raise PassError(f"two passes are registered as '{spec.name}'")
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[PassSpec]:
        return [self._specs[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._specs or ":" in name

    def get(self, name: str) -> PassSpec:
        if ":" in name:
            return load_reference(name)
        if name not in self._specs:
            from graphkit.suggest import did_you_mean

            raise PassError(f"unknown pass '{name}'{did_you_mean(name, self._specs)}")
        return self._specs[name]


def load_reference(ref: str) -> PassSpec:
    """Load ``package.module:function`` and return its pass spec."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise PassError(f"pass reference '{ref}' is not of the form 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PassError(f"pass reference '{ref}': cannot import module '{module_name}': {exc}") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise PassError(f"pass reference '{ref}': module '{module_name}' has no '{attr}'")
    spec = spec_of(obj)
    if spec is None:
        raise PassError(f"pass reference '{ref}' is not decorated with @graphkit.register_pass")
    return spec


# -- parameter type checking (the recipe is data; its values are checked against annotations) --


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, Sequence, tuple, typing.Sequence):
        args = typing.get_args(tp)
        return f"list[{_type_name(args[0]) if args else 'any'}]"
    if origin in (dict, Mapping, typing.Mapping):
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def type_problem(tp: Any, value: Any) -> str | None:
    """Return why ``value`` does not fit annotation ``tp``, or None when it does."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return None
    if origin is Literal:
        allowed = typing.get_args(tp)
        return None if value in allowed else f"{value!r} is not one of {list(allowed)}"
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        problems = [type_problem(a, value) for a in typing.get_args(tp)]
        return None if any(p is None for p in problems) else f"{value!r} has the wrong type"
    if tp is type(None):
        return None if value is None else f"{value!r} is not null"
    if origin in (list, Sequence, tuple, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            return f"{value!r} is not a list"
        args = typing.get_args(tp)
        for i, item in enumerate(value):
            problem = type_problem(args[0], item) if args else None
            if problem:
                return f"item {i}: {problem}"
        return None
    if origin in (dict, Mapping, typing.Mapping):
        return None if isinstance(value, dict) else f"{value!r} is not a mapping"
    if tp is bool:
        return None if isinstance(value, bool) else f"{value!r} is not true/false"
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{value!r} is not an integer"
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"{value!r} is not a number"
    if tp is str:
        return None if isinstance(value, str) else f"{value!r} is not a string"
    return None if isinstance(value, tp) else f"{value!r} is not {_type_name(tp)}"
