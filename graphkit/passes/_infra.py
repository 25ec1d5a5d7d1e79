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
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from graphkit._util import did_you_mean, user_import_path
from graphkit.errors import PassError, check_interrupted

if TYPE_CHECKING:
    import onnx

ENTRY_POINT_GROUP = "graphkit.passes"
BUILTIN_MODULES = tuple(
    f"graphkit.passes.{name}"
    for name in (
        "cleanup",
        "bind_inputs",
        "cast_indices_int32",
        "conv1d_to_conv2d",
        "fold_constants",
        "fold_transpose_softmax",
        "fold_uniform_attention",
        "remove_identity",
        "rename_io",
        "replace_pad_value",
        "replace_gather_elements",
        "replace_scatternd_with_concat",
        "set_batch_size",
        "set_implmode",
        "simplify",
        "split_maxpool",
        "tile_conv_width",
    )
)
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
    """What a pass reports. ``atc`` carries ATC settings a pass asks for (``set_implmode``).

    ``near_misses`` ((label, why) pairs) and ``site_labels`` are filled from the pass's
    :class:`Sites` by the registry; a pass need not set them.
    """

    sites: int
    atc: Mapping[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    near_misses: list[tuple[str, str]] = field(default_factory=list)
    site_labels: list[str] = field(default_factory=list)


SITES_PARAM = "sites"  # the reserved keyword through which a pass receives its Sites
MAX_NEAR_MISSES = 50


class Sites:
    """One pass run's rewrite sites: which candidates matched, which the pass may rewrite, and
    why the near-misses did not match (onnxscript's match tracer, in small).

    A pass opts in by declaring a keyword-only parameter ``sites: Sites`` (reserved; a recipe
    cannot set it). For every candidate that matches, in a deterministic order, it calls
    ``sites.take(label)`` and rewrites the candidate only when that returns True; for a
    candidate it rejected for a reason worth telling it calls ``sites.miss(label, why)``.
    Sites are numbered in the order offered, and a pass must offer the same candidates
    whichever earlier ones it was allowed to rewrite. Without a selection every match is taken;
    ``graphkit bisect`` selects the first k to find the site that breaks the numbers.
    """

    def __init__(self, select: Callable[[int], bool] | None = None) -> None:
        self._select = select
        self.offered: list[str] = []
        self.taken: list[str] = []
        self.near_misses: list[tuple[str, str]] = []
        self.misses = 0  # all of them; near_misses keeps the first MAX_NEAR_MISSES

    def take(self, label: str) -> bool:
        index = len(self.offered)
        self.offered.append(label)
        if self._select is not None and not self._select(index):
            return False
        self.taken.append(label)
        return True

    def miss(self, label: str, why: str) -> None:
        self.misses += 1
        if len(self.near_misses) < MAX_NEAR_MISSES:
            self.near_misses.append((label, why))


def first_sites(k: int) -> Sites:
    """A selection of the first ``k`` sites a pass offers."""
    return Sites(lambda i: i < k)


@dataclass(frozen=True)
class Example:
    """A small model on which a pass rewrites at least one site (a positive example).

    Every built-in pass module lists its own in ``EXAMPLES``; the registry's meta-tests run the
    pass on each (it must rewrite something, pass the ONNX checker, keep the numbers where its
    contract is exact, and change nothing the second time). ``text`` is ONNX text, with or
    without the ``<ir_version, opset_import>`` header (``opset`` fills it in); ``params`` are
    the pass's parameters. Initializers: ``weights`` gives seeded float32 tensors of the given
    shapes (each name its own seed), ``constants`` exact values (``np.asarray``'d: spell the
    dtype out, ``np.array([2], np.int64)``). ``inputs``: input values the numbers are checked
    on instead of seeded ones (an input the pass binds to a value gets that value).
    """

    text: str
    params: Mapping[str, Any] = field(default_factory=dict)
    opset: int = 13
    weights: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)  # fixed input values (bound inputs)

    def model(self) -> onnx.ModelProto:
        """The example as a model, checked by the full ONNX checker."""
        import zlib

        import numpy as np

        from graphkit.ir.build import model_from_text, seeded

        inits = {k: seeded(*shape, seed=zlib.crc32(k.encode())) for k, shape in self.weights.items()}
        inits |= {k: np.asarray(v) for k, v in self.constants.items()}
        return model_from_text(self.text, opset=self.opset, inits=inits)


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

    def as_dict(self) -> dict[str, Any]:
        """The parameter as typed JSON values: ``{"name", "type", "default", "required"}``, the
        default as the value a recipe writes (``false``, ``1e-06``, ``null``; ``null`` where it
        is required), and ``choices`` for a parameter that takes one of a few literals."""
        out: dict[str, Any] = {"name": self.name, "type": _type_name(self.annotation)}
        if typing.get_origin(self.annotation) is Literal:
            choices = list(typing.get_args(self.annotation))
            out["type"] = " | ".join(sorted({_type_name(type(c)) for c in choices}))
            out["choices"] = choices
        out["default"] = None if self.required else _json_value(self.default)
        out["required"] = self.required
        return out


def _json_value(value: Any) -> Any:
    """``value`` where JSON can hold it (tuples as lists), else its repr: a third-party pass
    may default to any object."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class PassSpec:
    name: str
    fn: Callable[..., int | PassResult]
    contract: Contract
    params: Mapping[str, Param]
    takes_sites: bool = False  # the pass declares ``sites: Sites`` (selection, near-misses)

    @property
    def doc(self) -> str:
        """The first line of the pass's docstring."""
        return (inspect.getdoc(self.fn) or "").strip().splitlines()[0] if self.fn.__doc__ else ""

    def describe(self) -> dict[str, Any]:
        """Name, contract, first doc line and parameters (``graphkit passes --json``)."""
        params = [p.as_dict() for p in self.params.values()]
        return {"name": self.name, "contract": str(self.contract), "doc": self.doc, "params": params}

    def check_params(self, params: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Validate recipe parameters against the signature; return them with defaults filled."""
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

    def run(self, graph: Any, params: Mapping[str, Any], sites: Sites | None = None) -> PassResult:
        """Run the pass. ``sites`` selects which matches it may rewrite (passes that take it)."""
        if sites is not None and not self.takes_sites:
            raise PassError(f"pass '{self.name}' does not expose its sites (no 'sites: Sites' parameter)")
        kwargs = dict(params)
        if self.takes_sites:
            sites = sites if sites is not None else Sites()
            kwargs[SITES_PARAM] = sites
        result = self.fn(graph, **kwargs)
        if isinstance(result, bool) or not isinstance(result, (int, PassResult)):
            raise PassError(
                f"pass '{self.name}' returned {type(result).__name__}; a pass returns the number "
                "of sites it rewrote (int) or a PassResult"
            )
        if not isinstance(result, PassResult):
            result = PassResult(sites=result)
        if sites is not None:
            result.near_misses = [*result.near_misses, *sites.near_misses]
            result.site_labels = [*result.site_labels, *sites.taken]
        return result


def register_pass(
    name: str, *, contract: Contract = EXACT
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a function as a graphkit pass under a stable snake_case ``name``."""
    if not _NAME_RE.match(name):
        raise ValueError(f"pass name {name!r} is not snake_case")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = _params_of(fn, name)
        takes_sites = params.pop(SITES_PARAM, None) is not None
        fn.pass_spec = PassSpec(name, fn, contract, params, takes_sites)  # type: ignore[attr-defined]
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
        if p.name == SITES_PARAM and hints[p.name] is not Sites:
            raise TypeError(f"pass {name!r}: parameter 'sites' is reserved for graphkit.Sites")
        params[p.name] = Param(p.name, hints[p.name], p.default)
    return params


def spec_of(obj: Any) -> PassSpec | None:
    spec = getattr(obj, "pass_spec", None)
    return spec if isinstance(spec, PassSpec) else None


class PassRegistry:
    """Finds passes by name: built-ins, entry points, then ``module:function`` references."""

    def __init__(self, extra: Sequence[PassSpec] = ()) -> None:
        self._specs: dict[str, PassSpec] = {}
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
            raise PassError(f"unknown pass '{name}'{did_you_mean(name, self._specs)}")
        return self._specs[name]


def load_reference(ref: str) -> PassSpec:
    """Load ``package.module:function`` and return its pass spec."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise PassError(f"pass reference '{ref}' is not of the form 'module:function'")
    try:
        with user_import_path():  # the current folder, as `python -m graphkit` has it
            module = importlib.import_module(module_name)
    except ImportError as exc:
        check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
        why = f"cannot import module '{module_name}': {exc}"
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]:
            why += " (graphkit looks in the current folder, the recipe's folder and the installed packages)"
        raise PassError(f"pass reference '{ref}': {why}") from None
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
