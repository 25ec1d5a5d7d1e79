"""Fuzzing the recipe loader and the command line (hypothesis).

Whatever the YAML or the argv, graphkit answers with one of its own errors: one line, naming
the file, exit 2. Anything else that escapes (TypeError, ValueError, RecursionError, OSError,
a traceback on stderr) is a bug. Runs are derandomized so CI sees the same examples every time;
``GRAPHKIT_FUZZ_SCALE=20`` multiplies the example counts for a longer local hunt.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from graphkit import ascend as atc_mod
from graphkit._util import one_line
from graphkit.ascend.lint import RULES
from graphkit.cli import main
from graphkit.cli._args import batch_list as parse_batch_list
from graphkit.errors import GraphkitError, RecipeError, UsageError
from graphkit.passes._infra import PassRegistry
from graphkit.pipeline.reference import seeded_rows
from graphkit.pipeline.steps import Pipeline
from graphkit.recipe import TOP_KEYS, default_catalog, load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parent.parent
SCALE = float(os.environ.get("GRAPHKIT_FUZZ_SCALE", "1"))


def fuzz(examples: int):  # noqa: ANN201 - a hypothesis settings decorator
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- values ------------------------------------------------------------------------------------

REGISTRY = PassRegistry()
CATALOG = default_catalog(REGISTRY)
PASS_PARAMS = sorted({p for s in REGISTRY.specs() for p in s.params})
KNOWN_KEYS = sorted(
    {
        *TOP_KEYS,
        *("model", "onnx", "weights", "opset", "shape", "dtype", "range", "pass", "with", "expect"),
        *("sites", "seed", "batch", "tolerance", "samples", "strict_approximate", "default"),
        *("max_abs", "max_rel", "min_cosine", "input", "audio", "npy", "features", "count"),
        *("required", "kind", "output", "score_index", "crops", "ignore"),
        *(f.name for f in fields(atc_mod.AtcSettings)),
        *atc_mod.FUSION_GROUPS,
        *atc_mod.KNOWN_EXTRA_FLAGS,
        *atc_mod.GEAR_FLAGS,
        *PASS_PARAMS,
    }
)
# 10**99 is the longest integer literal a recipe may hold (recipe.MAX_NUMBER_CHARS), 10**400 beyond it
HUGE_INTS = [10**30, -(10**30), 2**31, 2**32, 2**63 - 1, 2**63, -(2**63), 2**64, 10**99, 10**400]
ODD_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 1e-300, 0.5, 4096.0]
PATHLIKE = [
    *("../../etc", "~", "~nosuchuser_graphkit/x", "/dev/null", "/", ".", "..", "C:\\x"),
    *("a:b", "with space", "a\x00b", "x" * 5000, "d/" * 3000, "tiny.onnx", "audio", "x.npy"),
]
ODD_STRINGS = [
    *("", " ", "\t", "a\nb", "a\r\nb", "x\u2028y", "x" * 10_000, "\x00", "名前", "²", "٣", "1" * 5000),
    *("0x10", "1e3", "-1", "on", "off", "yes", "null", "~", "B", "b", "T", "2020-13-45", "1_000"),
    *(":", "x:", ":y", "..x:y", ".x:y", "os:path", "a b:c", "tests:nothing", "graphkit.cli:main"),
    *(">= 1", ">= 99999999999999999999", "== -1", "> " + "9" * 5000, "!= 0"),
]
KNOWN_STRINGS = [
    *REGISTRY.names(),
    *("float32", "float16", "int64", "int8", "uint8", "bool", "ecapa_logmel", "waveform_64600"),
    *("ecapa_tdnn", "aasist_l", "x", "y", "pooled", "mel", "embedding", "attention"),
    *("speaker_verification", "anti_spoofing", "Ascend310P3", "Ascend710", "Ascend310p3"),
    *("GraphFusion", "UBFusion", "Priority", "TbeEltwiseFusionPass", "high_precision", "high_performance"),
    *("Sigmoid", "Conv", "Conv1d", "ScatterND", "8.0", "5.0.4", "8.0.RC1", "NCHW", "ND", "NHWC"),
    *("mixed_float16", "allow_mix_precision", "must_keep_origin_dtype", "error", "debug", "mode"),
    *RULES,
    *KNOWN_KEYS,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5000),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_FLOATS),
    st.text(max_size=12),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(ODD_STRINGS + PATHLIKE + KNOWN_STRINGS),
)


@st.composite
def near_miss(draw: st.DrawFn) -> str:
    """A known key or name, mistyped: one letter more or less, case, spaces."""
    word = draw(st.sampled_from(KNOWN_KEYS + KNOWN_STRINGS[:40]))
    how = draw(st.sampled_from(["append", "drop", "upper", "space", "dash"]))
    if how == "append":
        return word + draw(st.sampled_from("sx_1"))
    if how == "drop" and len(word) > 1:
        i = draw(st.integers(0, len(word) - 1))
        return word[:i] + word[i + 1 :]
    if how == "upper":
        return word.upper()
    if how == "space":
        return f" {word} "
    return word.replace("_", "-")


keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    near_miss(),
    st.text(max_size=10),
    st.sampled_from(ODD_STRINGS),
    st.integers(-3, 3),
    st.sampled_from([None, True, False, 1.5, 10**30]),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)


def dump(data: object) -> str:
    # sort_keys=False: keys of mixed types (1, "a", None) do not sort
    return yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=False, width=10**6)


# -- the property ------------------------------------------------------------------------------


def assert_one_line(message: str, prefix: str) -> None:
    assert message, "an empty error message"
    assert len(message.splitlines()) == 1 and "\n" not in message, repr(message)
    assert message.startswith(prefix), (prefix, message)


def load_or_clean_error(path: Path):  # noqa: ANN201 - Recipe | None
    """load_recipe's result, or None after checking its error is graphkit's and one line."""
    try:
        return load_recipe(path, catalog=CATALOG)
    except GraphkitError as exc:
        assert exc.exit_code == 2, exc
        assert_one_line(str(exc), str(path))
        return None


def assert_usable(recipe) -> None:  # noqa: ANN001 - a Recipe
    """A recipe that validates can be used: seeded inputs, ATC lines, the pass split."""
    Pipeline.from_recipe(recipe)
    atc_mod.check_warnings(recipe.atc)
    shapes = {i.name: list(i.concrete(recipe.batch_sizes[0])) for i in recipe.inputs}
    switches = atc_mod.fusion_switch_json(recipe.atc)
    atc_mod.atc_command(
        recipe.atc,
        model="m_bs1.onnx",
        output="m_bs1",
        shapes=shapes,
        fusion_switch_file="fusion_switch.cfg" if switches else None,
    )
    if math.prod(math.prod(i.concrete(recipe.parity.batch)) for i in recipe.inputs) <= 10**5:
        feed = seeded_rows(recipe.inputs, recipe.parity.batch, recipe.parity.seed)
        assert all(np.isfinite(v).all() for v in feed.values() if v.dtype.kind == "f")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Where the fuzzed recipes live, beside the files a valid recipe names."""
    path = tmp_path_factory.mktemp("fuzz")
    onnx.save(tiny.conv1d_chain(), path / "tiny.onnx")
    np.save(path / "x.npy", np.zeros((2, 4, 16), np.float32))
    (path / "audio").mkdir()
    (path / "bad.yaml").write_text("name: [unclosed\n")
    (path / "invalid.yaml").write_text(dump({"name": "x", "source": {"model": "nope"}}))
    (path / "empty.yaml").write_bytes(b"")
    (path / "notonnx.onnx").write_bytes(b"\x0a\x05hello")
    return path


def write(folder: Path, data: object, name: str = "r.yaml") -> Path:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else dump(data).encode())
    return path


# -- 1. arbitrary YAML data --------------------------------------------------------------------

top_level = st.one_of(
    values,
    st.dictionaries(st.sampled_from(TOP_KEYS) | keys, values, max_size=8),
    st.fixed_dictionaries(
        {"name": st.sampled_from(["m", "a/b", "", "..", "名前"]) | scalars, "source": values},
        optional={k: values for k in TOP_KEYS[2:]},
    ),
)


@fuzz(300)
@given(data=top_level)
@example(data={"\x1e": None})  # found: the key's control character split the message in two
def test_random_yaml_is_a_recipe_or_one_clean_error(folder, data):
    recipe = load_or_clean_error(write(folder, data))
    if recipe is not None:
        assert_usable(recipe)


# -- 2. mutations of valid recipes --------------------------------------------------------------


def onnx_recipe() -> dict:
    """A recipe on an ONNX file that touches every section of the schema."""
    return {
        "name": "tiny",
        "source": {"onnx": "tiny.onnx", "opset": 17},
        "inputs": {"x": {"shape": ["B", 4, 16], "dtype": "float32", "range": [-1.0, 1.0]}},
        "outputs": ["y", "pooled"],
        "batch_sizes": [1, 3],
        "passes": [
            "conv1d_to_conv2d",
            {"pass": "remove_identity", "expect": {"sites": ">= 0"}},
            {"pass": "simplify", "with": {"skip_fuse_bn": True, "skipped_optimizers": ["a"]}},
            {"pass": "set_implmode", "with": {"op_types": ["Sigmoid"], "mode": "high_precision"}},
            {"pass": "fold_constants", "with": {"partitioning": "basic", "size_threshold": 1024}},
            "set_batch_size",
            {"pass": "tile_conv_width", "with": {"tiles": 2}},
        ],
        "parity": {
            "seed": 0,
            "batch": 2,
            "tolerance": {
                "default": {"max_abs": 1e-4, "max_rel": 1e-3, "min_cosine": 0.9999},
                "y": {"max_abs": 1e-3},
            },
            "samples": [
                {"input": "x", "npy": "x.npy", "count": 2, "required": True},
                {"input": "x", "audio": "audio", "features": "waveform_64600", "count": 1},  # a folder
            ],
            "strict_approximate": False,
        },
        "atc": {
            "soc_version": "Ascend310P3",
            "log": "error",
            "cann_version": "8.0",
            "precision_mode_v2": "mixed_float16",
            "op_select_implmode": "high_precision",
            "optypelist_for_implmode": ["Sigmoid"],
            "fusion_switches": {"UBFusion": {"TbeEltwiseFusionPass": "off"}, "GraphFusion": {}},
            "extra_flags": {"mode": 0, "enable_small_channel": True, "modify_mixlist": "ops.json"},
        },
        "task": {
            "kind": "anti_spoofing",
            "input": "x",
            "features": "waveform_64600",
            "output": "y",
            "score_index": 1,
        },
        "expect_ops": {"Conv1d": 0, "Conv": ">= 1"},
        "lint": {"ignore": ["pad-reflect"]},
    }


BASES = {
    "ecapa": yaml.safe_load((ROOT / "recipes" / "ecapa.yaml").read_text()),
    "onnx": onnx_recipe(),
    # required keys only: one edit reaches what the other sections would refuse first
    "minimal": {
        "name": "m",
        "source": {"onnx": "tiny.onnx"},
        "inputs": {"x": {"shape": ["B", 4, 16], "dtype": "float32", "range": [-1.0, 1.0]}},
        "passes": [],
    },
}


def node_paths(tree: object, prefix: tuple = ()) -> list[tuple]:
    """The path of every node of a YAML tree, the root included."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += node_paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += node_paths(v, (*prefix, i))
    return out


def at(tree: object, path: tuple) -> object:
    for key in path:
        tree = tree[key]  # type: ignore[index]
    return tree


edge_values = st.one_of(
    scalars,
    values,
    st.sampled_from([[], {}, [[]], [{}], {"": None}, ["B"], [1, 1], [0], [-1], [1, 2, 3]]),
    st.lists(st.sampled_from([1, 2, 4096, 4097, "B", "T", 0, -1, 10**30, 1.5]), min_size=1, max_size=4),
).map(copy.deepcopy)  # later edits may go inside the value: never into a shared example


@st.composite
def mutated(draw: st.DrawFn) -> object:
    """A valid recipe with one to three random edits anywhere: replace, delete, add, rename."""
    data = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(node_paths(data)))
        how = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename"]))
        parent = at(data, path[:-1]) if path else None
        node = at(data, path)
        if how == "delete" and path:
            del parent[path[-1]]  # type: ignore[union-attr]
        elif how == "add" and isinstance(node, dict):
            node[draw(keys | near_miss())] = draw(edge_values)
        elif how == "add" and isinstance(node, list):
            node.insert(draw(st.integers(0, len(node))), draw(edge_values))
        elif how == "rename" and isinstance(parent, dict):
            parent[draw(near_miss() | keys)] = parent.pop(path[-1])
        elif path:
            parent[path[-1]] = draw(edge_values)  # type: ignore[index]
        else:
            data = draw(edge_values)
    return data


def test_the_bases_are_valid(folder):
    for data in BASES.values():
        assert_usable(load_recipe(write(folder, data)))


@fuzz(1200)
@given(data=mutated())
def test_mutated_recipes_load_or_fail_cleanly(folder, data):
    recipe = load_or_clean_error(write(folder, data))
    if recipe is not None:
        assert_usable(recipe)


def changed(base: str, *edits: tuple[tuple, object]) -> dict:
    """A base recipe with ``(path, value)`` edits; value ``KeyError`` deletes the key."""
    data = copy.deepcopy(BASES[base])
    for path, value in edits:
        parent = at(data, path[:-1])
        if value is KeyError:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return data


X = ("inputs", "x")
# What the fuzzing found, each pinned with the line the user now reads.
FOUND = {
    # control characters and line breaks in keys and values split the one-line message
    "RS in a key": ({"\x1e": None}, "\\x1e: unknown key"),
    "CR in a dtype": (changed("onnx", ((*X, "dtype"), "0\r")), "inputs.x.dtype: '0\\r' is not one of"),
    "CR in a pass name": (changed("onnx", (("passes", 0), "simplify\r")), "unknown pass 'simplify\\r'"),
    "CR in soc_version": (changed("onnx", (("atc", "soc_version"), "\r")), "unknown soc_version '\\r'"),
    "LS in a name": (changed("ecapa", (("name",), "a\u2028b")), "name: 'a\\u2028b' must use"),
    # OverflowError: int too large to convert to float (test_huge_ints_in_parsed_data, too)
    "huge range": (changed("onnx", ((*X, "range", 0), 10**400)), "line 13, column 7: a number of 401"),
    "huge tolerance": (
        changed("onnx", (("parity", "tolerance", "default", "max_abs"), -(10**309))),
        "a number of 311 characters",
    ),
    # RuntimeError (~user), OSError (ENAMETOOLONG), a NUL byte, a folder where a file belongs
    "unknown ~user": (
        changed("onnx", (("source", "onnx"), "~nosuchuser_graphkit/x")),
        "source.onnx: '~nosuchuser_graphkit/x': no such user or home folder",
    ),
    "long path": (changed("onnx", (("source", "onnx"), "x" * 5000)), "File name too long"),
    "NUL in a path": (changed("onnx", (("parity", "samples", 0, "npy"), "a\x00b")), "NUL byte"),
    "folder as model": (changed("onnx", (("source", "onnx"), "audio")), "audio is a folder, not a file"),
    # TypeError from importlib: a relative module name
    "relative reference": (
        changed("onnx", (("passes", 0), "..x:y")),
        "not a pass name or a 'package.module:",
    ),
    "empty module": (changed("onnx", (("passes", 0), ":y")), "not a pass name or a 'package.module:"),
    # ValueError: int("²"), int() of 5000 digits
    "mode ²": (changed("onnx", (("atc", "extra_flags", "mode"), "²")), "'²' is not a mode"),
    "cann 5000 digits": (
        changed("onnx", (("atc", "cann_version"), "8" * 5000 + ".0")),
        "is not a CANN version",
    ),
    # validated, then broke later: seeded inputs, atc_command, ONNX's int64 dims, file names
    "int range holds no int": (
        changed("onnx", ((*X, "dtype"), "int64"), ((*X, "range"), [0.2, 0.7])),
        "holds no int64 value",
    ),
    "int range overflows": (
        changed("onnx", ((*X, "dtype"), "uint8"), ((*X, "range"), [0, 1000])),
        "exceeds the uint8 range",
    ),
    "float16 range overflows": (
        changed("onnx", ((*X, "dtype"), "float16"), ((*X, "range"), [-1e10, 1e10])),
        "exceeds the float16 range",
    ),
    "dim beyond int64": (changed("onnx", ((*X, "shape", 1), 10**30)), "is above the maximum"),
    "empty input name": (
        changed("onnx", (X, KeyError), (("inputs", ""), {"shape": ["B", 4]})),
        "input names",
    ),
    "name ..": (changed("onnx", (("name",), "..")), "start with a letter"),
    # wrong types silently taken for the defaults
    "parity: false": (changed("onnx", (("parity",), False)), "parity: expected a mapping, got bool"),
    "with: []": (changed("onnx", (("passes", 2, "with"), [])), "passes[2].with: expected a mapping"),
}


@pytest.mark.parametrize("data, expected", list(FOUND.values()), ids=list(FOUND))
def test_found_bugs_are_clean_errors(folder, data, expected):
    path = write(folder, data)
    with pytest.raises(GraphkitError) as exc:
        load_recipe(path, catalog=CATALOG)
    assert_one_line(str(exc.value), str(path))
    assert expected in str(exc.value), str(exc.value)[:300]


def test_huge_ints_in_parsed_data(folder):
    """parse_recipe takes data from Python too, where no YAML bound applies."""
    data = changed("onnx", ((*X, "range", 0), 10**400), (("parity", "seed"), 10**5000))
    with pytest.raises(RecipeError, match=r"inputs.x.range\[0\]: 1000.*\.\.\..* is too large for a number"):
        parse_recipe(data, path=folder / "r.yaml", catalog=CATALOG)


# -- 3. raw bytes ------------------------------------------------------------------------------


def alias_bomb(levels: int = 9, mapping: bool = False) -> str:
    """Billion laughs: level k holds nine aliases of level k-1, so 9**levels leaves unfold
    from a few hundred bytes; all levels in one flow list (or mapping), the last the largest."""
    if mapping:
        keys = "qrstuvwxy"
        items = ["&l0 {" + ", ".join(f"{k}: 1" for k in keys) + "}"]
        items += [f"&l{n} {{" + ", ".join(f"{k}: *l{n - 1}" for k in keys) + "}" for n in range(1, levels)]
        return "{" + ", ".join(f"G{n}: {item}" for n, item in enumerate(items)) + "}"
    items = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    items += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return "[" + ", ".join(items) + "]"


RECIPE_HEAD = "name: m\nsource: {model: ecapa_tdnn}\ninputs: {mel: {shape: [B, 1]}}\n"
BOMB = alias_bomb()
# name: (file content, what the error says; "" where any clean error will do)
RAW = {
    "empty": (b"", "the recipe is empty"),
    "spaces": (b"   \n\n", "the recipe is empty"),
    "comment only": (b"# nothing\n", "the recipe is empty"),
    "not utf-8": (b"name: \xff\xfe\n", "not UTF-8 text (byte 6)"),
    "utf-16 with BOM": ("name: m\n".encode("utf-16"), "not UTF-8 text (byte 0)"),
    "utf-8 BOM": ("\ufeffname: m\n".encode(), "missing required key 'source'"),
    "NUL byte": (b"name: m\x00\n", "unacceptable character #x0000"),
    "tab indent": (b"source:\n\tmodel: ecapa_tdnn\n", "found character '\\t' that cannot start any token"),
    "two documents": (b"---\nname: a\n---\nname: b\n", "expected a single document in the stream"),
    "top-level scalar": (b"42\n", "expected a mapping, got int 42"),
    "top-level list": (b"- name: m\n", "expected a mapping, got list"),
    # RecursionError in the composer, or deep enough for repr() of it to overflow later
    "deep list": (b"[" * 10_000 + b"]" * 10_000, "line 1, column 51: nested deeper than 50 levels"),
    "deep mapping": (b"{a: " * 10_000 + b"}" * 10_000, "nested deeper than 50 levels"),
    "deep block": ("".join(f"{' ' * i}a:\n" for i in range(200)).encode(), "nested deeper than 50 levels"),
    "deep through aliases": (
        b"a: &a " + b"[" * 40 + b"]" * 40 + b"\nb: " + b"[" * 40 + b"*a" + b"]" * 40 + b"\n",
        "nested deeper than 50 levels once aliases expand",
    ),
    # billion laughs: 9**9 values from 900 bytes; repr() or a recursive copy of them never ends
    "alias bomb in passes": (f"{RECIPE_HEAD}passes: {BOMB}\n".encode(), "more than 10000 values"),
    "alias bomb in a parameter": (
        f"{RECIPE_HEAD}passes: [{{pass: simplify, with: {{skip_fuse_bn: {BOMB}}}}}]\n".encode(),
        "line 4, column 253: more than 10000 values once aliases expand",
    ),
    "alias bomb in atc mappings": (
        f"{RECIPE_HEAD}passes: []\natc: {{fusion_switches: {alias_bomb(mapping=True)}}}\n".encode(),
        "more than 10000 values once aliases expand",
    ),
    "recursive anchor": (b"name: &a [*a]\n", "an alias refers to its own anchor"),
    "undefined alias": (b"name: *nope\n", "found undefined alias 'nope'"),
    # ValueError out of yaml.safe_load
    "huge int literal": (b"name: m\nbatch_sizes: [" + b"9" * 5000 + b"]\n", "a number of 5000 characters"),
    "bad date": (RECIPE_HEAD.encode() + b"passes: 2020-13-45\n", "cannot read '2020-13-45' as timestamp"),
    "bad !!int": (b"name: !!int abc\n", "cannot read 'abc' as int: invalid literal"),
    "bad !!float": (b"name: !!float abc\n", "cannot read 'abc' as float"),
    "bad !!binary": (b"name: !!binary 'A'\n", "failed to decode base64 data"),
    "python tag": (b"name: !!python/object/apply:os.system ['true']\n", "could not determine a constructor"),
    "date key": (b"2020-01-01: x\n", "key datetime.date(2020, 1, 1) is not a string"),
    "set": (b"!!set {name, source}\n", "expected a mapping, got set"),
    "omap": (b"!!omap [{name: m}]\n", "expected a mapping, got list"),
    "unhashable key": (b"? [a]\n: b\n", "found unhashable key"),
    # silently the last one, before
    "duplicate key": (
        RECIPE_HEAD.encode() + b"passes: []\nname: other\n",
        "line 5, column 1: duplicate key 'name'",
    ),
    "merge key": (b"base: &b {model: ecapa_tdnn}\nsource: {<<: *b}\n", "base: unknown key"),
    "control chars": (b"name: \x07\x1b[31m\n", "unacceptable character #x0007"),
    "line separators": ("name: 'a\u2028b\u0085c'\n".encode(), "missing required key 'source'"),
    "long line": (b"name: " + b"x" * 100_000 + b"\n", "missing required key 'source'"),
    "lone surrogate escape": (RECIPE_HEAD.replace("m", '"\\ud800"', 1).encode() + b"passes: []\n", "\\ud800"),
}


@pytest.mark.parametrize("content, expected", list(RAW.values()), ids=list(RAW))
def test_raw_bytes_fail_cleanly(folder, content, expected):
    path = write(folder, content)
    with pytest.raises(GraphkitError) as exc:
        load_recipe(path, catalog=CATALOG)
    assert_one_line(str(exc.value), str(path))
    assert expected in str(exc.value), str(exc.value)[:300]


@fuzz(300)
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bytes_fail_cleanly(folder, content):
    load_or_clean_error(write(folder, content))


def test_oversized_file_is_refused_unread(folder):
    path = folder / "huge.yaml"
    with path.open("wb") as f:
        f.write(b"name: m\n")
        f.truncate(64 * 2**20)  # sparse
    assert load_or_clean_error(path) is None


@pytest.mark.parametrize(
    "name",
    ["no/such/recipe.yaml", "audio", "/dev/null", "a\x00b.yaml", "x" * 5000 + ".yaml", "tiny.onnx/r.yaml"],
)
def test_odd_recipe_paths(folder, name):
    path = folder / name
    try:
        load_recipe(path)
    except GraphkitError as exc:
        assert_one_line(str(exc), one_line(str(path)))
    else:
        pytest.fail("an odd path loaded")


# -- 4. the command line -----------------------------------------------------------------------

SUBCOMMANDS = {
    "apply": ["-o", "--out", "--batch", "--weights", "--no-parity", "--dump-passes", "--json"],
    "eval": ["--data", "--runner", "--batch", "--models", "--weights", "--trials", "--limit", "-o"],
    "bench": ["--runner", "--batch", "--models", "--weights", "--loops", "--warmup", "-o"],
    "preprocess": ["--data", "--batch", "--trials", "--limit", "-o"],
    "bisect": ["--batch", "--weights", "--data", "--trials", "--limit", "--metric", "--max-delta"],
    "inspect": ["--json"],
    "lint": ["--soc", "--cann", "--gear", "--ignore", "--json", "--list-rules"],
    "compare": ["--inputs", "--batch", "--seed", "--outputs-only", "--cosine", "--kl", "--rmse", "-o"],
    "passes": ["--json"],
}
RECIPE_SUBCOMMANDS = ("apply", "eval", "bench", "preprocess", "bisect")
NUMBERS = ["1,,2", "-1", "0", "1e3", "99999999999999999999", "1,1", "nan", "inf", "-0", "", " ", "4097"]
NUMBERS += ["9" * 5000 + ".0", "٨.٠", "8.0\n", "²"]  # --cann: int() of 5000 digits raised ValueError
CLI_PATHS = [
    *("missing.yaml", "audio", "bad.yaml", "invalid.yaml", "empty.yaml", "notonnx.onnx", "nope.npz"),
    *("a\x00b", "x" * 5000, "d/" * 3000, "tiny.onnx/sub", "/dev/null", "~nosuchuser_graphkit/x", "-"),
    *("audio=spoof", "audio=bogus", "=", "x.npy"),
]
MODEL_PATHS = ["tiny.onnx", *CLI_PATHS]
tokens = st.one_of(
    st.sampled_from(NUMBERS + CLI_PATHS),
    st.sampled_from(["-v", "-q", "--", "--no-such-flag", "--batch=", "-o=", "--json", "-x"]),
    st.text(max_size=8),
    st.text(max_size=6).map(lambda s: "--" + s),
)


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """A subcommand, a recipe or model path that stops real work, then random flags and values."""
    command = draw(st.sampled_from(sorted(SUBCOMMANDS)))
    argv = draw(st.lists(st.sampled_from(["-v", "-q"]), max_size=1)) + [command]
    if command in RECIPE_SUBCOMMANDS:
        argv.append(draw(st.sampled_from(CLI_PATHS)))  # never a valid recipe: no real work
    elif command in ("inspect", "lint"):
        argv += draw(st.lists(st.sampled_from(MODEL_PATHS), max_size=1))
    elif command == "compare":
        argv += draw(st.lists(st.sampled_from(MODEL_PATHS), min_size=0, max_size=3))
    for _ in range(draw(st.integers(0, 5))):
        flag = draw(st.sampled_from(SUBCOMMANDS[command]) | tokens)
        argv.append(flag)
        if draw(st.booleans()):
            argv.append(draw(st.sampled_from(NUMBERS + MODEL_PATHS) | tokens))
    return argv


def is_help(argv: list[str]) -> bool:
    """-h, or a prefix of --help / --version (argparse accepts unambiguous abbreviations)."""
    flags = [a.split("=")[0] for a in argv if a.startswith("-")]
    return any(
        a == "-h" or (len(a) > 2 and ("--help".startswith(a) or "--version".startswith(a))) for a in flags
    )


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            assert is_help(argv), (argv, exc)
            return 0, out.getvalue(), err.getvalue()
    return code, out.getvalue(), err.getvalue()


def assert_cli_clean(argv: list[str], code: int, err: str) -> None:
    lines = err.rstrip().splitlines()
    if "graphkit: traceback" not in lines:  # -v logs the traceback of a graphkit error, on purpose
        assert "Traceback" not in err, err
    # "graphkit apply: error: ..." where the parser found it (an unknown flag names its command)
    errors = [line for line in lines if re.match(r"graphkit( [a-z]+)?: error: .", line)]
    if code == 2:
        assert len(errors) == 1 and lines[-1] == errors[0], (argv, err)
    else:
        assert code in (0, 1), (argv, code, err)
        assert argv[argv[0] in ("-v", "-q")] in ("passes", "lint", "inspect", "compare") or is_help(argv)


@fuzz(500)
@given(argv=argvs())
def test_cli_fails_with_one_line_and_exit_2(folder, argv):
    code, _, err = run_cli(argv, folder)
    assert_cli_clean(argv, code, err)


LONG = "x" * 5000
# What the fuzzing found on the command line, each pinned with the line the user now reads.
CLI_FOUND = {
    # OSError ENAMETOOLONG out of pathlib (is_file, is_dir) before any graphkit check
    "long model path": (["inspect", LONG], "model xxxxxxxx"),
    "long lint path": (["lint", LONG], "(5000 characters): File name too long"),
    "long compare path": (["compare", "d/" * 3000, "tiny.onnx"], "a d/d/d/"),
    "long recipe path": (["apply", LONG + ".yaml"], "recipe xxxxxxxx"),
    # ValueError out of numpy: a negative seed, a batch whose array cannot exist
    "negative seed": (
        ["compare", "tiny.onnx", "tiny.onnx", "--batch", "2", "--seed", "-1"],
        "--seed must be >= 0",
    ),
    "huge batch": (
        ["compare", "tiny.onnx", "tiny.onnx", "--batch", "99999999999999999999"],
        "--batch must be <= 4096",
    ),
    # TypeError: Python 3.11's argparse leaves [] for a positional after a second '--'
    "'--' twice": (["compare", "tiny.onnx", "--", "--"], "the following arguments are required: b"),
    # ValueError: int() of a 5000-digit CANN major version
    "long cann": (["lint", "tiny.onnx", "--cann", "9" * 5000 + ".0"], "is not a CANN version"),
    # printed as they were: a NUL byte, a line break in the one error line
    "NUL in a path": (["inspect", "a\x00b"], "model 'a\\x00b': a path cannot contain a NUL byte"),
    "newline in a value": (
        ["lint", "tiny.onnx", "--soc", "Ascend310P3\n"],
        "unknown soc_version 'Ascend310P3\\n'",
    ),
    # -v: the path check ran before logging was set up, so the traceback came out unprefixed
    "-v and a NUL": (["-v", "inspect", "a\x00b"], "graphkit: traceback"),
    # exit 1 with every tensor "abnormal": NaN thresholds compare false
    "NaN threshold": (
        ["compare", "tiny.onnx", "tiny.onnx", "--batch", "2", "--cosine", "nan"],
        "--cosine must be",
    ),
}


@pytest.mark.parametrize("argv, expected", list(CLI_FOUND.values()), ids=list(CLI_FOUND))
def test_cli_found_bugs_are_one_line(folder, argv, expected):
    code, _, err = run_cli(argv, folder)
    assert code == 2, err
    assert_cli_clean(argv, code, err)
    assert expected in err, err[:300]


@pytest.mark.parametrize("command", RECIPE_SUBCOMMANDS)
@pytest.mark.parametrize("recipe", ["a\x00b.yaml", "x" * 5000 + ".yaml", "audio", "/dev/null"])
def test_cli_odd_recipe_paths(folder, command, recipe):
    extra = {"eval": ["--data", "audio"], "preprocess": ["--data", "audio", "--batch", "1", "-o", "o"]}
    code, _, err = run_cli([command, recipe, *extra.get(command, [])], folder)
    assert code == 2
    assert_cli_clean([command], code, err)


@fuzz(200)
@given(text=st.text(max_size=20) | st.sampled_from(NUMBERS + ["1,4, 8", "٣", "²", "1_0", "+4"]))
def test_batch_lists_parse_or_fail_as_usage_errors(text):
    try:
        sizes = parse_batch_list(text)
    except UsageError as exc:
        assert_one_line(str(exc), "--batch")
    else:
        assert sizes and all(isinstance(s, int) and 1 <= s <= 4096 for s in sizes)
        assert len(set(sizes)) == len(sizes)
