"""Recipe validation: every mistake is one line naming the file, the path and a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from graphkit.cli import main
from graphkit.cli._args import batch_list as parse_batch_list
from graphkit.errors import RecipeError
from graphkit.pipeline.steps import Pipeline
from graphkit.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent

GOOD = {
    "name": "m",
    "source": {"model": "ecapa_tdnn"},
    "inputs": {"mel": {"shape": ["B", 80, 200]}},
    "outputs": ["embedding", "attention"],
    "passes": ["conv1d_to_conv2d", {"pass": "simplify", "with": {"skip_fuse_bn": True}}],
}


def write(tmp: Path, data) -> Path:
    path = tmp / "r.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def mutate(**changes):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = data
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if value is KeyError:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def test_good_recipe_and_defaults(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r.batch_sizes == (1, 4, 8, 16, 32, 64)
    assert [p.name for p in r.passes] == ["conv1d_to_conv2d", "simplify"]
    assert r.passes[1].params["skip_fuse_bn"] is True
    assert r.source.opset == 17
    assert r.atc.soc_version == "Ascend310P3"
    pipeline = Pipeline.from_recipe(r)
    assert [p.name for p in pipeline.once] == ["conv1d_to_conv2d", "simplify"]
    assert [p.name for p in pipeline.per_batch] == ["set_batch_size"]  # implicit, last
    assert pipeline.per_batch[0].where.endswith("passes (implicit set_batch_size)")


def test_shipped_recipes_validate():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        load_recipe(path)


@pytest.mark.parametrize(
    "data, expected",
    [
        (mutate(pases=[]), "pases: unknown key; did you mean 'passes'?"),
        (
            mutate(passes__0="conv1d_to_conv3d"),
            "passes[0]: unknown pass 'conv1d_to_conv3d'; did you mean 'conv1d_to_conv2d'?",
        ),
        (
            mutate(passes__1__with={"skip_fuse_bnn": True}),
            "passes[1].with: pass 'simplify' has no parameter 'skip_fuse_bnn'; did you mean 'skip_fuse_bn'?",
        ),
        (
            mutate(passes__1__with={"skip_fuse_bn": "yes"}),
            "passes[1].with.skip_fuse_bn: 'yes' is not true/false",
        ),
        (mutate(passes__1__wiht={}), "passes[1].wiht: unknown key; did you mean 'with'?"),
        (mutate(batch_sizes=[1, 0, 4]), "batch_sizes[1]: 0 is below the minimum 1"),
        (mutate(batch_sizes="4"), "batch_sizes: expected a non-empty list of integers"),
        (mutate(batch_sizes=[4, 4]), "batch_sizes: batch sizes must be unique"),
        (mutate(inputs__mel__shape=["B", -80, 200]), "inputs.mel.shape[1]: -80 is below the minimum 1"),
        (mutate(inputs__mel__shape=["B", "T", 200]), "only the batch dim may be symbolic"),
        (mutate(inputs__mel__shape="B,80,200"), "inputs.mel.shape: expected a list (empty for a scalar)"),
        (mutate(inputs__mel__dtype="float"), "inputs.mel.dtype: 'float' is not one of"),
        (mutate(source__weights="missing.pt"), "source.weights: file not found"),
        (mutate(source__opset=19), "source.opset: 19 is above the maximum 17"),
        (mutate(source__model="ecapa"), "source.model: 'ecapa' is not one of aasist, aasist_l, ecapa_tdnn"),
        (mutate(source={"onnx": "m.onnx", "model": "ecapa_tdnn"}), "give exactly one of 'model'"),
        (mutate(name="a/b"), "name: 'a/b' must use letters"),
        (mutate(passes__0=["x"]), "passes[0]: expected a mapping, got list"),
        (mutate(passes__0={"with": {}}), "passes[0]: missing required key 'pass'"),
        (mutate(passes=["set_batch_size", {"pass": "set_batch_size"}]), "'set_batch_size' may appear once"),
        (mutate(passes=[{"pass": "set_batch_size", "with": {"batch": 4}}]), "set per batch size"),
        (
            mutate(parity={"tolerance": {"embeding": {"max_abs": 1e-3}}}),
            "parity.tolerance.embeding: not an output of the recipe; did you mean 'embedding'?",
        ),
        (
            mutate(parity={"tolerance": {"default": {"max_abs": -1}}}),
            "parity.tolerance.default.max_abs: -1 must be positive",
        ),
        (
            mutate(parity={"samples": [{"input": "mel", "audio": "nowhere"}]}),
            "parity.samples[0].features: expected a non-empty string",
        ),
        (
            mutate(parity={"samples": [{"input": "mel", "audio": "nowhere", "features": "ecapa_logmel"}]}),
            "parity.samples[0].audio: file not found",
        ),
        (mutate(atc={"soc_version": "Ascend311"}), "atc"),
        (mutate(atc={"sco_version": "Ascend310P3"}), "did you mean 'soc_version'?"),
        (None, "the recipe is empty"),
        ("name: [unclosed\n", "invalid YAML: line"),
        ([1, 2], "expected a mapping, got list"),
    ],
)
def test_bad_recipes(tmp_path, data, expected):
    path = write(tmp_path, "" if data is None else data)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    message = str(exc.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(RecipeError, match="not UTF-8"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "none.yaml")


@pytest.mark.parametrize(
    "data",
    [
        mutate(passes__0="conv1d_to_conv3d"),
        mutate(pases=[]),
        mutate(batch_sizes=[0]),
        mutate(source__weights="missing.pt"),
        mutate(inputs__mel__shape="x"),
    ],
)
def test_cli_bad_recipe_exit_2_one_line(tmp_path, capsys, data):
    assert main(["apply", str(write(tmp_path, data)), "-o", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphkit: error: "), captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "o").exists()


def test_cli_usage_errors(tmp_path, capsys):
    good = write(tmp_path, GOOD)
    assert main(["apply", str(good), "--batch", "1,0"]) == 2
    assert main(["apply", str(good), "--weights", str(tmp_path / "nope.pt")]) == 2
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "--batch" in err and "--weights: file not found" in err and "unknown command 'frobnicate'" in err


def test_parse_batch_list():
    assert parse_batch_list("1,4, 8") == (1, 4, 8)
    for bad in ("", "a", "0", "1,1", "-2"):
        with pytest.raises(Exception, match="--batch"):
            parse_batch_list(bad)
