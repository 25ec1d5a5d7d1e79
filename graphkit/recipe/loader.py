"""The recipe file as YAML data: read with bounds, duplicate keys refused.

A recipe is a few KB of YAML; the bounds (1 MiB, 50 levels, 10,000 values once aliases expand,
integer literals of at most 100 characters) keep a hostile or broken file from hanging the
loader (aliases expand without limit: "billion laughs") or overflowing the stack, and a key
given twice in one mapping is an error, not the last one wins.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from graphkit._util import one_line, show
from graphkit.errors import RecipeError

MAX_RECIPE_BYTES = 1 << 20
MAX_YAML_NODES = 10_000  # after alias expansion
MAX_YAML_DEPTH = 50
MAX_NUMBER_CHARS = 100  # an integer literal longer than this is no recipe value


def read_recipe_data(path: Path) -> tuple[Any, str]:
    """The YAML data of a recipe file and the file's sha256. Raises RecipeError."""
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
    return data, hashlib.sha256(raw).hexdigest()


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
            value = show(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
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
                f"duplicate key {show(key.value)} (first on line {first.start_mark.line + 1})",
                key.start_mark,
            )
        seen[(key.tag, key.value)] = key
