"""Recipes: one YAML file per model, validated completely before any model is loaded.

A recipe names the source model, its inputs and outputs, the batch sizes to emit, the pass list
with parameters, the parity settings and the ATC settings. Every key is checked: unknown keys,
wrong types, unknown passes, bad parameter names and impossible values are :class:`RecipeError`
with the file, the path inside it (``passes[2].with.mode``) and the closest valid key. The YAML
itself is bounded (1 MiB, 50 levels, 10,000 values once aliases expand, integer literals of at
most 100 characters) and a key given twice in one mapping is an error, not the last one wins.

Schema (see ``recipes/ecapa.yaml`` for a full example)::

    name: ecapa_tdnn                      # file stem of the emitted models
    source:                               # exactly one of model / onnx
      model: ecapa_tdnn                   # a built-in PyTorch model (needs the torch extra)
      weights: path/to/checkpoint.pt      # optional; relative to the recipe; --weights overrides
      opset: 17                           # 11..17 (ATC's range)
      # onnx: path/to/model.onnx          # or an existing ONNX file
    inputs:
      mel: {shape: [B, 80, 200], dtype: float32, range: [-1.0, 1.0]}
    outputs: [embedding, attention]
    batch_sizes: [1, 4, 8, 16, 32, 64]
    passes:
      - conv1d_to_conv2d                  # a name, or
      - pass: simplify                    # a mapping with parameters
        with: {skip_fuse_bn: true}
        expect: {sites: ">= 1"}           # optional: fail when the pass rewrites fewer
      - pass: mypkg.passes:fuse_thing     # a third-party pass by module:function
    parity: {seed: 0, batch: 2, tolerance: {...}, samples: [...]}
    atc: {soc_version: Ascend310P3, cann_version: "8.0", ...}
    expect_ops: {Conv1d: 0, ScatterND: 0} # optional: op counts every final model must meet
    lint: {ignore: [pad-reflect]}         # optional: graphkit lint rules apply skips
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import yaml

from graphkit.errors import AtcConfigError, PassError, RecipeError
from graphkit.expect import PSEUDO_OPS, STEP_KEYS, Condition, known_op, parse_condition
from graphkit.suggest import did_you_mean

DEFAULT_BATCH_SIZES = (1, 4, 8, 16, 32, 64)  # the ECAPA guide's table
DEFAULT_OPSET = 17  # highest opset ATC parses (ascend-toolchain.md §3.1: export at 11..17)
MAX_BATCH = 4096
MAX_DIM = 2**63 - 1  # ONNX dims are int64
# A recipe is a few KB of YAML; these bounds keep a hostile or broken file from hanging the
# loader (aliases expand without limit: "billion laughs") or overflowing the stack.
MAX_RECIPE_BYTES = 1 << 20
MAX_YAML_NODES = 10_000  # after alias expansion
MAX_YAML_DEPTH = 50
MAX_NUMBER_CHARS = 100  # an integer literal longer than this is no recipe value
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
SAMPLE_FEATURES = ("ecapa_logmel", "waveform_64600")
BATCH_PASS = "set_batch_size"  # passes from this one on run once per batch size


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    range: tuple[float, float] | None = None  # seeded inputs: uniform in range, else N(0,1)

    @property
    def batch_axis(self) -> int | None:
        symbolic = [i for i, d in enumerate(self.shape) if isinstance(d, str)]
        return symbolic[0] if symbolic else None

    def concrete(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if isinstance(d, str) else d for d in self.shape)


@dataclass(frozen=True)
class SourceSpec:
    model: str | None = None
    onnx: Path | None = None
    weights: Path | None = None
    opset: int = DEFAULT_OPSET


@dataclass(frozen=True)
class PassStep:
    name: str
    params: Mapping[str, Any]
    where: str  # e.g. "recipes/ecapa.yaml: passes[2]"
    expect: Mapping[str, Condition] = field(default_factory=dict)  # {"sites": Condition}


@dataclass(frozen=True)
class Tolerance:
    max_abs: float = 1e-4
    max_rel: float | None = None
    min_cosine: float | None = 0.99999


@dataclass(frozen=True)
class SampleSpec:
    input: str
    features: str | None = None  # how to turn files into input rows (SAMPLE_FEATURES)
    audio: Path | None = None  # a folder (searched recursively) or one file
    npy: Path | None = None  # an array (N, *input shape without batch)
    count: int = 8
    required: bool = True


@dataclass(frozen=True)
class ParitySpec:
    seed: int = 0
    batch: int = 2
    tolerance: Tolerance = field(default_factory=Tolerance)
    per_output: Mapping[str, Tolerance] = field(default_factory=dict)
    samples: tuple[SampleSpec, ...] = ()
    strict_approximate: bool = False

    def tolerance_for(self, output: str) -> Tolerance:
        return self.per_output.get(output, self.tolerance)


TASK_KINDS = ("speaker_verification", "anti_spoofing")


@dataclass(frozen=True)
class TaskSpec:
    """How `graphkit eval` turns a dataset into inputs and outputs into the task's metric."""

    kind: str  # TASK_KINDS
    input: str  # the input the features feed
    features: str  # SAMPLE_FEATURES
    output: str  # speaker verification: the embedding; anti-spoofing: the score output
    score_index: int | None = None  # anti-spoofing: the bona fide column of `output`
    crops: int = 1  # speaker verification: evenly spaced crops per utterance, embeddings averaged


@dataclass(frozen=True)
class Recipe:
    path: Path
    sha256: str
    name: str
    source: SourceSpec
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    passes: tuple[PassStep, ...]
    parity: ParitySpec
    atc: Any  # graphkit.atc.AtcSettings
    task: TaskSpec | None = None
    expect_ops: Mapping[str, Condition] = field(default_factory=dict)  # on every final model
    lint_ignore: tuple[str, ...] = ()  # graphkit.lint rule ids apply does not check

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def split_passes(self) -> tuple[list[PassStep], list[PassStep]]:
        """(passes run once on the batch-polymorphic graph, passes run per batch size)."""
        names = [s.name for s in self.passes]
        if BATCH_PASS not in names:  # emitted models are static: fix the batch last
            implicit = PassStep(BATCH_PASS, {}, f"{self.path}: passes (implicit {BATCH_PASS})")
            return list(self.passes), [implicit]
        i = names.index(BATCH_PASS)
        return list(self.passes[:i]), list(self.passes[i:])


# ---------------------------------------------------------------------------------------------


class _Checker:
    """Walks the YAML tree; every message carries the file and the path inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> RecipeError:
        text = f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}"
        return RecipeError(one_line(text))

    def mapping(
        self, value: Any, where: str, *, required: Sequence[str] = (), allowed: Sequence[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"key {key!r} is not a string")
            if allowed and key not in allowed:
                raise self.fail(
                    _join(where, key),
                    f"unknown key{did_you_mean(key, allowed)} (valid keys: {', '.join(allowed)})",
                )
        for key in required:
            if key not in value:
                raise self.fail(where, f"missing required key '{key}'")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {_kind(value)}")
        return value

    def integer(self, value: Any, where: str, *, lo: int | None = None, hi: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"expected an integer, got {_kind(value)}")
        if lo is not None and value < lo:
            raise self.fail(where, f"{value} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise self.fail(where, f"{value} is above the maximum {hi}")
        return value

    def number(self, value: Any, where: str, *, positive: bool = False) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.fail(where, f"expected a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            raise self.fail(where, f"{_show(value)} is too large for a number") from None
        if not math.isfinite(number):
            raise self.fail(where, f"{value} is not finite")
        if positive and number <= 0:
            raise self.fail(where, f"{value} must be positive")
        return number

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_kind(value)}")
        return value

    def choice(self, value: Any, where: str, choices: Sequence[str]) -> str:
        text = self.string(value, where)
        if text not in choices:
            raise self.fail(
                where, f"{_show(text)} is not one of {', '.join(choices)}{did_you_mean(text, choices)}"
            )
        return text

    def file(self, value: Any, where: str, *, must_exist: bool = True, folder: bool = False) -> Path:
        """A path relative to the recipe; with ``must_exist``, a file (or, with ``folder``,
        a file or a folder) that is there. Paths the OS cannot look up are RecipeErrors too."""
        text = self.string(value, where)
        if "\x00" in text:  # os functions raise ValueError on it
            raise self.fail(where, f"{_show(text)}: a path cannot contain a NUL byte")
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # ~user of an unknown user, or no home folder
            raise self.fail(where, f"{_show(text)}: no such user or home folder") from None
        if not path.is_absolute():
            path = self.path.parent / path
        if not must_exist:
            return path
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as exc:  # name too long, permission denied, symlink loop
            raise self.fail(where, f"cannot look up {path}: {exc.strerror}") from None
        if not exists:
            raise self.fail(where, f"file not found: {path}")
        if is_dir and not folder:
            raise self.fail(where, f"{path} is a folder, not a file")
        return path


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return (
        f"{type(value).__name__} {_show(value)}"
        if not isinstance(value, (dict, list))
        else type(value).__name__
    )


def _show(value: Any, limit: int = 60) -> str:
    """A user's value for an error message: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-4:]}"


_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # and lone surrogates


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks escaped: an error message stays one line
    whatever the user's keys, values and file names hold."""
    return _BREAKS.sub(lambda m: repr(m.group())[1:-1], text)


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


TOP_KEYS = (
    "name",
    "source",
    "inputs",
    "outputs",
    "batch_sizes",
    "passes",
    "parity",
    "atc",
    "task",
    "expect_ops",
    "lint",
)


def load_recipe(path: str | Path, *, registry: Any = None) -> Recipe:
    """Read and validate a recipe file. Raises RecipeError on any problem."""
    path = Path(path)
    raw = _read_recipe(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(
            one_line(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8")
        ) from None
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)  # "while parsing a flow sequence"
        problem = f"{context}: {problem}" if context else problem
        raise RecipeError(one_line(f"{path}: invalid YAML: {at}{problem}")) from None
    return parse_recipe(data, path=path, sha256=hashlib.sha256(raw).hexdigest(), registry=registry)


def _read_recipe(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise RecipeError(one_line(f"{path}: is a folder, not a recipe file"))
        if not path.exists():  # also a path with a NUL byte: pathlib answers False
            raise RecipeError(one_line(f"{path}: recipe file not found"))
        if not path.is_file():
            raise RecipeError(one_line(f"{path}: not a regular file (a device or a pipe?)"))
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise RecipeError(one_line(f"{path}: {size} bytes; a recipe is at most {MAX_RECIPE_BYTES} bytes"))
        return path.read_bytes()
    except OSError as exc:  # name too long, permission denied, symlink loop
        raise RecipeError(one_line(f"{path}: cannot read the recipe: {exc.strerror}")) from None


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` with bounds: nesting depth, node count after alias expansion, no
    recursive aliases, no duplicate keys, no overlong numbers; a value that cannot be built
    (``2020-13-45``, ``!!int abc``) is a YAML error with its line instead of a ValueError."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1  # the composer recurses: stop before Python's stack does
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            what = node.tag.rpartition(":")[2]
            value = _show(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {value} as {what}: {exc}", node.start_mark
            ) from None

    def construct_yaml_int(self, node: Any) -> int:
        if len(node.value) > MAX_NUMBER_CHARS:  # int() of 5000 digits is refused, of 0b... slow
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a number of {len(node.value)} characters (at most {MAX_NUMBER_CHARS})",
                node.start_mark,
            )
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _load_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_graph(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_yaml_graph(root: yaml.Node) -> None:
    """Walk the composed nodes once (aliases are shared nodes, so the walk is linear) and bound
    the tree they expand to; refuse cycles and duplicate keys."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()  # started, not finished: the ancestors of the node at hand
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key, children = id(node), _yaml_children(node)
        if finished:
            open_.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            too_big, too_deep = size[key] > MAX_YAML_NODES, depth[key] > MAX_YAML_DEPTH
            if too_big or too_deep:
                problem = (
                    f"more than {MAX_YAML_NODES} values"
                    if too_big
                    else f"nested deeper than {MAX_YAML_DEPTH} levels"
                )
                raise yaml.composer.ComposerError(
                    None, None, f"{problem} once aliases expand", node.start_mark
                )
            continue
        if key in size:
            continue
        if key in open_:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to its own anchor", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(node)
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children)


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_unique_keys(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        first = seen.get((key.tag, key.value))
        if first is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"duplicate key {_show(key.value)} (first on line {first.start_mark.line + 1})",
                key.start_mark,
            )
        seen[(key.tag, key.value)] = key


def parse_recipe(data: Any, *, path: Path, sha256: str = "", registry: Any = None) -> Recipe:
    from graphkit.atc import settings_from_mapping
    from graphkit.registry import PassRegistry

    c = _Checker(path)
    if data is None:
        raise c.fail("", "the recipe is empty")
    top = c.mapping(data, "", required=("name", "source", "inputs", "passes"), allowed=TOP_KEYS)
    name = c.string(top["name"], "name")
    if not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith((".", "-")):
        raise c.fail(
            "name",
            f"{_show(name)} must use letters, digits, '-', '_' or '.' and start with a letter, "
            "digit or '_' (it names files)",
        )
    source = _source(c, top["source"])
    inputs = _inputs(c, top["inputs"])
    outputs = _outputs(c, _given(top, "outputs", []))
    batch_sizes = _batch_sizes(c, _given(top, "batch_sizes", list(DEFAULT_BATCH_SIZES)))
    registry = registry or PassRegistry()
    passes = _passes(c, top["passes"], registry)
    parity = _parity(c, _given(top, "parity", {}), inputs, outputs)
    atc_data = c.mapping(_given(top, "atc", {}), "atc")
    try:
        atc = settings_from_mapping(atc_data, f"{path}: atc")
    except AtcConfigError as exc:  # its messages quote the user's values as they are
        raise AtcConfigError(one_line(str(exc))) from None
    task = _task(c, top["task"], inputs, outputs) if top.get("task") is not None else None
    expect_ops = _expect_ops(c, _given(top, "expect_ops", {}))
    lint_ignore = _lint(c, _given(top, "lint", {}))
    return Recipe(
        path,
        sha256,
        name,
        source,
        inputs,
        outputs,
        batch_sizes,
        passes,
        parity,
        atc,
        task,
        expect_ops,
        lint_ignore,
    )


def _given(mapping: Mapping[str, Any], key: str, default: Any) -> Any:
    """``mapping[key]``, or ``default`` where the key is absent or null (``key:`` left empty);
    a value of the wrong type (``parity: false``) is left for the checker to refuse."""
    value = mapping.get(key)
    return default if value is None else value


def _lint(c: _Checker, value: Any) -> tuple[str, ...]:
    from graphkit.lint import RULES

    lint = c.mapping(value, "lint", allowed=("ignore",))
    ignore = _given(lint, "ignore", [])
    if not isinstance(ignore, list):
        raise c.fail("lint.ignore", f"expected a list of rule ids, got {_kind(ignore)}")
    for i, rule in enumerate(ignore):
        c.choice(rule, f"lint.ignore[{i}]", list(RULES))
    return tuple(ignore)


def _condition(c: _Checker, value: Any, where: str) -> Condition:
    try:
        return parse_condition(value)
    except ValueError as exc:
        raise c.fail(where, str(exc)) from None


def _expect_ops(c: _Checker, value: Any) -> dict[str, Condition]:
    ops = c.mapping(value, "expect_ops")
    out = {}
    for op, cond in ops.items():
        if not known_op(op):
            hint = did_you_mean(op, [*PSEUDO_OPS, *(s.name for s in onnx.defs.get_all_schemas())])
            raise c.fail(f"expect_ops.{op}", f"unknown op type '{op}'{hint} (or Conv1d, Conv2d, Conv3d)")
        out[op] = _condition(c, cond, f"expect_ops.{op}")
    return out


def _task(c: _Checker, value: Any, inputs: tuple[InputSpec, ...], outputs: tuple[str, ...]) -> TaskSpec:
    t = c.mapping(
        value,
        "task",
        required=("kind", "features", "output"),
        allowed=("kind", "input", "features", "output", "score_index", "crops"),
    )
    kind = c.choice(t["kind"], "task.kind", TASK_KINDS)
    names = [i.name for i in inputs]
    if "input" in t:
        inp = c.choice(t["input"], "task.input", names)
    elif len(names) == 1:
        inp = names[0]
    else:
        raise c.fail("task", f"name the input the features feed ('input': one of {', '.join(names)})")
    features = c.choice(t["features"], "task.features", SAMPLE_FEATURES)
    output = c.string(t["output"], "task.output")
    if outputs and output not in outputs:
        raise c.fail("task.output", f"'{output}' is not a recipe output{did_you_mean(output, outputs)}")
    score_index = None
    if kind == "anti_spoofing":
        score_index = c.integer(t.get("score_index", 1), "task.score_index", lo=0)
    elif "score_index" in t:
        raise c.fail("task.score_index", "applies to anti_spoofing only")
    crops = c.integer(t.get("crops", 1), "task.crops", lo=1, hi=64)
    if crops > 1 and kind != "speaker_verification":
        raise c.fail("task.crops", "applies to speaker_verification only")
    return TaskSpec(kind, inp, features, output, score_index, crops)


def _source(c: _Checker, value: Any) -> SourceSpec:
    src = c.mapping(value, "source", allowed=("model", "onnx", "weights", "opset"))
    if ("model" in src) == ("onnx" in src):
        raise c.fail("source", "give exactly one of 'model' (a built-in model) or 'onnx' (a file)")
    opset = c.integer(src.get("opset", DEFAULT_OPSET), "source.opset", lo=11, hi=17)
    if "onnx" in src:
        if "weights" in src:
            raise c.fail("source.weights", "weights apply to a built-in model, not to an ONNX file")
        return SourceSpec(onnx=c.file(src["onnx"], "source.onnx"), opset=opset)
    from graphkit.models import BUILTIN_MODELS

    model = c.choice(src["model"], "source.model", sorted(BUILTIN_MODELS))
    weights = None
    if src.get("weights") is not None:
        weights = c.file(src["weights"], "source.weights")
    return SourceSpec(model=model, weights=weights, opset=opset)


def _inputs(c: _Checker, value: Any) -> tuple[InputSpec, ...]:
    items = c.mapping(value, "inputs")
    if not items:
        raise c.fail("inputs", "at least one input is needed")
    out = []
    for name, spec in items.items():
        where = _join("inputs", name)
        if not name.strip() or any(ch in name for ch in ":;,") or not name.isprintable():
            raise c.fail(
                where,
                "input names are non-empty and may not contain ':', ';', ',' or control "
                "characters (ATC's --input_shape cannot express them)",
            )
        spec = c.mapping(spec, where, required=("shape",), allowed=("shape", "dtype", "range"))
        shape_v = spec["shape"]
        if not isinstance(shape_v, list) or not shape_v:
            raise c.fail(_join(where, "shape"), f"expected a non-empty list, got {_kind(shape_v)}")
        shape: list[int | str] = []
        for i, d in enumerate(shape_v):
            dw = f"{where}.shape[{i}]"
            if isinstance(d, str):
                if not d.isidentifier():
                    raise c.fail(dw, f"symbolic dim {_show(d)} must be an identifier such as B")
                shape.append(d)
            else:
                shape.append(c.integer(d, dw, lo=1, hi=MAX_DIM))
        symbolic = [d for d in shape if isinstance(d, str)]
        if len(symbolic) > 1:
            raise c.fail(
                _join(where, "shape"),
                f"only the batch dim may be symbolic, found {symbolic} (ATC needs static shapes)",
            )
        dtype = c.choice(spec.get("dtype", "float32"), _join(where, "dtype"), DTYPES)
        rng = None
        if "range" in spec:
            r = spec["range"]
            if not isinstance(r, list) or len(r) != 2:
                raise c.fail(_join(where, "range"), "expected [low, high]")
            lo, hi = (c.number(x, f"{where}.range[{i}]") for i, x in enumerate(r))
            if not lo < hi:
                raise c.fail(_join(where, "range"), f"low {lo} must be below high {hi}")
            _check_range(c, _join(where, "range"), dtype, lo, hi)
            rng = (lo, hi)
        elif not dtype.startswith("float"):
            raise c.fail(where, f"an {dtype} input needs a 'range' for its seeded values")
        out.append(InputSpec(name, tuple(shape), dtype, rng))
    return tuple(out)


def _check_range(c: _Checker, where: str, dtype: str, lo: float, hi: float) -> None:
    """Seeded values must fit the dtype: floats up to its largest finite value; integers are
    drawn from [int(low), int(high)), which must hold one value and fit the type (bool: 0, 1)."""
    import numpy as np

    if dtype.startswith("float"):
        top = float(np.finfo(dtype).max)
        if not (-top <= lo and hi <= top):
            raise c.fail(where, f"[{lo}, {hi}] exceeds the {dtype} range (±{top:g})")
        return
    bounds = (0, 1) if dtype == "bool" else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    if not (bounds[0] <= lo and hi <= bounds[1] + 1):
        raise c.fail(where, f"[{lo}, {hi}] exceeds the {dtype} range [{bounds[0]}, {bounds[1] + 1})")
    if not int(lo) < int(hi):
        raise c.fail(
            where, f"[{lo}, {hi}) holds no {dtype} value (seeded integers lie in [int(low), int(high)))"
        )


def _outputs(c: _Checker, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise c.fail("outputs", f"expected a list of output names, got {_kind(value)}")
    names = tuple(c.string(v, f"outputs[{i}]") for i, v in enumerate(value))
    if len(set(names)) != len(names):
        raise c.fail("outputs", "output names must be unique")
    return names


def _batch_sizes(c: _Checker, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise c.fail("batch_sizes", f"expected a non-empty list of integers, got {_kind(value)}")
    sizes = tuple(c.integer(v, f"batch_sizes[{i}]", lo=1, hi=MAX_BATCH) for i, v in enumerate(value))
    if len(set(sizes)) != len(sizes):
        raise c.fail("batch_sizes", "batch sizes must be unique")
    return sizes


def parse_batch_list(text: str) -> tuple[int, ...]:
    """'1,4,8' from the command line (--batch)."""
    from graphkit.errors import UsageError

    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(
            one_line(f"--batch: {_show(text)} is not a comma-separated list of integers")
        ) from None
    if not sizes or any(not 1 <= s <= MAX_BATCH for s in sizes):
        raise UsageError(
            one_line(f"--batch: batch sizes must be between 1 and {MAX_BATCH}, got {_show(text)}")
        )
    if len(set(sizes)) != len(sizes):
        raise UsageError(one_line(f"--batch: batch sizes must be unique, got {_show(text)}"))
    return sizes


def _passes(c: _Checker, value: Any, registry: Any) -> tuple[PassStep, ...]:
    if not isinstance(value, list):
        raise c.fail("passes", f"expected a list of passes, got {_kind(value)}")
    steps = []
    for i, item in enumerate(value):
        where = f"passes[{i}]"
        expect: dict[str, Condition] = {}
        if isinstance(item, str):
            name, params = c.string(item, where), {}
        else:
            item = c.mapping(item, where, required=("pass",), allowed=("pass", "with", "expect"))
            name = c.string(item["pass"], f"{where}.pass")
            params = _given(item, "with", {})
            c.mapping(params, f"{where}.with")
            expect_map = c.mapping(_given(item, "expect", {}), f"{where}.expect", allowed=STEP_KEYS)
            expect = {k: _condition(c, v, f"{where}.expect.{k}") for k, v in expect_map.items()}
        if ":" in name and not _is_reference(name):
            raise c.fail(where, f"{_show(name)} is not a pass name or a 'package.module:function' reference")
        try:
            spec = registry.get(name)
            checked = spec.check_params(params, f"{c.path}: {where}.with")
        except PassError as exc:  # its messages quote the user's values as they are
            text = str(exc)
            if not text.startswith(str(c.path)):
                text = f"{c.path}: {where}: {text}"
            raise RecipeError(one_line(text)) from None
        if spec.name == BATCH_PASS and "batch" in params:
            raise c.fail(f"{where}.with.batch", "set per batch size from batch_sizes; remove it")
        steps.append(PassStep(spec.name if ":" not in name else name, checked, f"{c.path}: {where}", expect))
    names = [s.name for s in steps]
    if names.count(BATCH_PASS) > 1:
        raise c.fail("passes", f"'{BATCH_PASS}' may appear once")
    return tuple(steps)


def _is_reference(name: str) -> bool:
    """``package.module:function``: dotted identifiers, so importing it imports no relative or
    empty module name (importlib raises TypeError and ValueError on those)."""
    module, _, attr = name.partition(":")
    return attr.isidentifier() and all(part.isidentifier() for part in module.split("."))


def _tolerance(c: _Checker, value: Any, where: str, base: Tolerance) -> Tolerance:
    t = c.mapping(value, where, allowed=("max_abs", "max_rel", "min_cosine"))
    max_abs = c.number(t.get("max_abs", base.max_abs), f"{where}.max_abs", positive=True)
    max_rel = t.get("max_rel", base.max_rel)
    if max_rel is not None:
        max_rel = c.number(max_rel, f"{where}.max_rel", positive=True)
    cos = t.get("min_cosine", base.min_cosine)
    if cos is not None:
        cos = c.number(cos, f"{where}.min_cosine")
        if not -1.0 <= cos <= 1.0:
            raise c.fail(f"{where}.min_cosine", f"{cos} is outside [-1, 1]")
    return Tolerance(max_abs, max_rel, cos)


def _parity(c: _Checker, value: Any, inputs: tuple[InputSpec, ...], outputs: tuple[str, ...]) -> ParitySpec:
    p = c.mapping(value, "parity", allowed=("seed", "batch", "tolerance", "samples", "strict_approximate"))
    seed = c.integer(p.get("seed", 0), "parity.seed", lo=0, hi=2**32 - 1)
    batch = c.integer(p.get("batch", 2), "parity.batch", lo=1, hi=MAX_BATCH)
    tol_map = c.mapping(_given(p, "tolerance", {}), "parity.tolerance")
    default = Tolerance()
    if "default" in tol_map:
        default = _tolerance(c, tol_map["default"], "parity.tolerance.default", default)
    per_output = {}
    for key, val in tol_map.items():
        if key == "default":
            continue
        if outputs and key not in outputs:
            raise c.fail(
                f"parity.tolerance.{key}",
                f"not an output of the recipe{did_you_mean(key, ['default', *outputs])}",
            )
        per_output[key] = _tolerance(c, val, f"parity.tolerance.{key}", default)
    samples_v = _given(p, "samples", [])
    if not isinstance(samples_v, list):
        raise c.fail("parity.samples", f"expected a list, got {_kind(samples_v)}")
    samples = tuple(_sample(c, s, f"parity.samples[{i}]", inputs) for i, s in enumerate(samples_v))
    strict = c.boolean(p.get("strict_approximate", False), "parity.strict_approximate")
    return ParitySpec(seed, batch, default, per_output, samples, strict)


def _sample(c: _Checker, value: Any, where: str, inputs: tuple[InputSpec, ...]) -> SampleSpec:
    s = c.mapping(
        value,
        where,
        required=("input",),
        allowed=("input", "audio", "npy", "features", "count", "required"),
    )
    names = [i.name for i in inputs]
    inp = c.string(s["input"], f"{where}.input")
    if inp not in names:
        raise c.fail(f"{where}.input", f"'{inp}' is not a recipe input{did_you_mean(inp, names)}")
    if ("audio" in s) == ("npy" in s):
        raise c.fail(where, "give exactly one of 'audio' (files + features) or 'npy' (an array)")
    required = c.boolean(s.get("required", True), f"{where}.required")
    count = c.integer(s.get("count", 8), f"{where}.count", lo=1, hi=MAX_BATCH)
    if "audio" in s:
        features = c.choice(s.get("features"), f"{where}.features", SAMPLE_FEATURES)
        audio = c.file(s["audio"], f"{where}.audio", must_exist=required, folder=True)
        return SampleSpec(inp, features, audio, None, count, required)
    if "features" in s:
        raise c.fail(f"{where}.features", "features apply to audio samples, not to npy arrays")
    npy = c.file(s["npy"], f"{where}.npy", must_exist=required)
    return SampleSpec(inp, None, None, npy, count, required)
