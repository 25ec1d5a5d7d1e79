"""The ``emulate[=MODE]`` runner (eval, bench) and ``compare --emulate``: the emitted model under
ATC's precision mode on onnxruntime CPU, labelled as emulated, with the emulation's note."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_apply import error_lines, write_recipe

from graphkit.ascend.precision import NOTE, PrecisionConfig, emulate
from graphkit.cli import main
from graphkit.errors import UsageError
from graphkit.eval.evaluate import EvalReport, RunResult
from graphkit.eval.report import render_eval
from graphkit.ir.io import load_model
from graphkit.ir.ort import run_model
from graphkit.recipe import load_recipe
from graphkit.runners.select import RecipeRunners, parse_runner

FEED = {"x": np.random.default_rng(0).standard_normal((3, 4, 16)).astype(np.float32)}


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("emulate")
    recipe = write_recipe(tmp, extra={"precision": {"emulate": False}})
    out = tmp / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out)]) == 0
    return recipe, out


def test_parse_emulate_runner():
    plain = parse_runner("emulate")
    assert (plain.kind, plain.arg, plain.label, plain.per_batch) == ("emulate", None, "emulated", True)
    assert parse_runner("emulate=force_fp16").label == "emulated force_fp16"
    assert parse_runner("emulate=fp16").arg == "force_fp16"  # precision_mode_v2's name
    with pytest.raises(UsageError, match="did you mean 'force_fp16'"):
        parse_runner("emulate=force_fp61")
    with pytest.raises(UsageError, match="bf16 and hif8 modes are not emulated"):
        parse_runner("emulate=allow_mix_precision_bf16")


def run_choice(recipe: Path, out: Path, text: str) -> dict[str, np.ndarray]:
    factory = RecipeRunners(load_recipe(recipe), models_dir=out)
    choice = parse_runner(text)
    factory.check([choice], [3])
    with factory.open(choice, 3, label=f"{choice.label} bs3") as runner:
        assert runner.label == f"{choice.label} bs3"
        return runner.infer(FEED, key="k")


def test_emulate_runner_runs_the_emulated_emitted_model(applied):
    recipe, out = applied
    model = load_model(out / "tiny_bs3.onnx")
    (want,) = run_model(emulate(model, PrecisionConfig("force_fp16")), [FEED], ["y", "pooled"])
    got = run_choice(recipe, out, "emulate")  # the recipe names no mode: force_fp16
    fp32 = run_choice(recipe, out, "graphkit")
    for name in ("y", "pooled"):
        np.testing.assert_array_equal(got[name], want[name])
        assert got[name].dtype == np.float32
        assert 0 < np.abs(got[name] - fp32[name]).max() < 1e-2
    kept = run_choice(recipe, out, "emulate=must_keep_origin_dtype")
    np.testing.assert_array_equal(kept["y"], fp32["y"])  # no fp16 anywhere: exactly the fp32 model


def test_a_recipe_mode_that_is_not_emulated_is_said_before_running(tmp_path):
    recipe = write_recipe(
        tmp_path, extra={"atc": {"soc_version": "Ascend910B1", "precision_mode": "allow_fp32_to_bf16"}}
    )
    factory = RecipeRunners(load_recipe(recipe), models_dir=tmp_path / "none")
    with pytest.raises(UsageError, match="the recipe's atc.precision_mode: 'allow_fp32_to_bf16'"):
        factory.check([parse_runner("emulate")], [1])


def result(runner: str, batch: int | None, eer: float, score: float = 0.0) -> RunResult:
    agreement = {} if batch is None else {"max_abs_score_delta": score}
    return RunResult(runner, batch, {"eer_percent": eer}, np.zeros(2), agreement=agreement)


def test_eval_table_sets_emulated_beside_fp32_with_the_note(applied):
    recipe, out = applied
    results = [
        result("torch", None, 5.0),
        result("graphkit bs1", 1, 5.0, 1e-7),
        result("emulated bs1", 1, 5.5, 0.05),
    ]
    report = EvalReport(load_recipe(recipe), "anti_spoofing", 2, 0, "eer_percent", [1], out, results)
    text = render_eval(report)
    head, _, *rows = text.splitlines()[1:6]
    assert head.split() == ["runner", "batch", "eer_percent", "Δ", "eer_percent", "max|Δ|", "score"]
    assert [row.split() for row in rows] == [
        ["torch", "-", "5.0000", "(reference)", "-"],
        ["graphkit", "1", "5.0000", "0", "1.0e-07"],
        ["emulated", "1", "5.5000", "+5.0e-01", "5.0e-02"],
    ]
    assert text.count(NOTE) == 1 and "'emulated' is force_fp16" in text


def test_compare_against_the_emulated_model(applied, tmp_path, capsys):
    _, out = applied
    model = str(out / "tiny_bs3.onnx")
    assert (
        main(["compare", model, model, "--emulate", "force_fp16", "-o", str(tmp_path / "c"), "--json"]) == 1
    )
    report = json.loads(capsys.readouterr().out)
    assert "emulated force_fp16" in report["candidate"] and any(NOTE in n for n in report["notes"])
    rows = {r["tensor"]: r for r in report["rows"]}
    assert {"y", "pooled", "c1"} <= set(rows)  # intermediates pair up under their names
    args = ["compare", model, model, "--emulate", "must_keep_origin_dtype", "-o", str(tmp_path / "d")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["compare", model, str(out / "manifest.json"), "--emulate", "force_fp16"]) == 2
    assert "not an ONNX model (.onnx)" in error_lines(capsys)[0]
    assert main(["compare", model, model, "--emulate", "fp8"]) == 2
    assert "not a precision mode graphkit emulates" in error_lines(capsys)[0]
