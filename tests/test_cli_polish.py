"""The command line as a new user meets it (issue 14): did-you-mean for commands, flags and
choices; help on every flag; repeatable -v/-q and --log-file; pass modules found beside the
user as `python -m` finds them; a fast --version; ort_cuda never running on CPU in disguise."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import onnx
import pytest
import tiny
import yaml

import graphkit.cli.passes as passes_cli
from graphkit.cli import build_parser, main
from graphkit.cli._logging import console_level
from graphkit.errors import RunnerUnavailable, UsageError
from graphkit.eval.gate import ALL_METRICS
from graphkit.recipe import load_recipe
from graphkit.runners import onnxruntime as ort_runner
from graphkit.runners.select import BENCH_RUNNERS, EVAL_RUNNERS, parse_runner

ERROR_LINE = re.compile(r"^graphkit( [a-z]+)?: error: \S")


def one_error(capsys) -> str:
    """The one line on stderr: an error line, prefixed once."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), lines
    assert "error: graphkit" not in lines[0]
    return lines[0]


def tiny_recipe(folder: Path, passes: list[str] | None = None, *, onnx_path: str = "tiny.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / onnx_path).exists():
        onnx.save(tiny.conv1d_chain(), folder / onnx_path)
    data = {
        "name": "tiny",
        "source": {"onnx": onnx_path},
        "inputs": {"x": {"shape": ["B", 4, 16]}},
        "outputs": ["y", "pooled"],
        "batch_sizes": [1],
        "passes": passes or ["set_batch_size"],
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "tiny.yaml"


# -- 1. did-you-mean, one prefix ------------------------------------------------------------


def test_a_misspelt_command_gets_a_suggestion(capsys):
    assert main(["aply"]) == 2
    assert one_error(capsys) == "graphkit: error: unknown command 'aply'; did you mean 'apply'?"
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate' (commands: apply, eval," in one_error(capsys)


def test_a_misspelt_flag_gets_a_suggestion_from_its_command(tmp_path, capsys):
    recipe = str(tmp_path / "r.yaml")
    assert main(["apply", recipe, "--batchs", "4"]) == 2
    assert one_error(capsys) == "graphkit apply: error: unrecognized argument --batchs; did you mean --batch?"
    assert main(["apply", recipe, "--batchs", "4", "--jsn"]) == 2
    line = one_error(capsys)
    assert "--batchs (did you mean --batch?)" in line and "--jsn (did you mean --json?)" in line
    assert main(["inspect", "a.onnx", "b.onnx"]) == 2
    assert one_error(capsys) == "graphkit inspect: error: unrecognized argument 'b.onnx'"


def test_a_misspelt_choice_gets_a_suggestion(capsys):
    assert main(["lint", "m.onnx", "--gear", "dynamic_batch"]) == 2
    line = one_error(capsys)
    assert line.startswith("graphkit lint: error: --gear: invalid choice 'dynamic_batch'")
    assert line.endswith("did you mean 'dynamic_batch_size'?")
    assert main(["bisect", "r.yaml", "--metric", "eer_percnt"]) == 2
    assert one_error(capsys).endswith("did you mean 'eer_percent'?")


@pytest.mark.parametrize(
    "argv",
    [[], ["-v"], ["--frobnicate"], ["apply"], ["compare", "a.onnx", "--", "--"], ["apply", "r.yaml", "-o"]],
)
def test_usage_errors_are_prefixed_once(argv, capsys):
    assert main(argv) == 2
    one_error(capsys)


def test_help_returns_instead_of_exiting(capsys):
    assert main(["--help"]) == 0
    assert "apply" in capsys.readouterr().out
    assert main(["apply", "--help"]) == 0
    assert "--no-parity" in capsys.readouterr().out


# -- 2. help on every flag ------------------------------------------------------------------


def every_action():
    parser = build_parser()
    for name, p in {"graphkit": parser, **parser.commands}.items():
        for action in p._actions:
            yield name, action


def test_every_flag_and_positional_has_help():
    missing = [
        f"{name} {'/'.join(a.option_strings) or a.dest}"
        for name, a in every_action()
        if not (a.help or "").strip() or a.help == argparse.SUPPRESS
    ]
    assert not missing, missing


def test_runner_help_lists_every_runner_and_says_it_repeats():
    helps = {name: a.help for name, a in every_action() if a.dest == "runner"}
    assert set(helps) == {"eval", "bench"}
    for command, runners in (("eval", EVAL_RUNNERS), ("bench", BENCH_RUNNERS)):
        assert all(re.search(rf"\b{r}\b", helps[command]) for r in runners), helps[command]
        assert "repeat" in helps[command]
    assert "files=" not in helps["bench"]  # bench cannot time an NPU's files


def test_metric_lists_its_values():
    metrics = {name: a for name, a in every_action() if a.dest == "metric"}
    assert set(metrics) == {"bisect", "precision"}
    for action in metrics.values():
        assert tuple(action.choices) == ALL_METRICS
        assert all(m in action.help for m in ALL_METRICS)


# -- 3. -v / -q counts and --log-file -------------------------------------------------------


@pytest.fixture
def chatty(monkeypatch):
    """`graphkit passes` replaced by a command that logs at every level, graphkit's and another
    library's, and fails when asked to."""

    def run(args: argparse.Namespace) -> int:
        log, other = logging.getLogger("graphkit"), logging.getLogger("otherlib")
        log.debug("gk-debug")
        log.info("gk-info")
        log.warning("gk-warning")
        log.error("gk-error")
        other.debug("other-debug")
        other.warning("other-warning")
        if args.json:
            raise UsageError("asked to fail")
        return 0

    monkeypatch.setattr(passes_cli, "run", run)


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["passes"], "info warning error"),
        (["-q", "passes"], "warning error"),
        (["-qq", "passes"], "error"),
        (["-v", "passes"], "debug info warning error"),
        (["-vv", "passes"], "debug info warning error other-debug other-warning"),
        (["-v", "passes", "-v"], "debug info warning error other-debug other-warning"),
        (["-v", "passes", "-q"], "info warning error"),
        (["passes", "-qqq"], "error"),
    ],
)
def test_verbosity_counts(chatty, capsys, argv, shown):
    """Other libraries' records reach the console from -vv on; below that they are the
    caller's root logger's business (in a shell: Python's last resort, warnings and up)."""
    assert main(argv) == 0
    err = capsys.readouterr().err
    expected = {w if w.startswith("other") else f"gk-{w}" for w in shown.split()}
    every = {"gk-debug", "gk-info", "gk-warning", "gk-error", "other-debug", "other-warning"}
    if "other-debug" not in expected:
        every -= {"other-warning"}
    assert {w for w in every if w in err} == expected, err


def test_verbosity_levels():
    assert [console_level(n) for n in (-5, -2, -1, 0, 1, 2)] == [
        logging.ERROR,
        logging.ERROR,
        logging.WARNING,
        logging.INFO,
        logging.DEBUG,
        logging.DEBUG,
    ]


def open_files() -> set[str]:
    fds = Path("/proc/self/fd")
    return {os.path.realpath(p) for p in fds.iterdir()} if fds.is_dir() else set()


def test_log_file_has_the_full_log_whatever_the_console_shows(chatty, tmp_path, capsys):
    log_file = tmp_path / "run.log"
    gk, root = logging.getLogger("graphkit"), logging.getLogger()
    before = (gk.handlers[:], gk.level, gk.propagate, root.handlers[:], root.level)
    assert main(["-qq", "--log-file", str(log_file), "passes"]) == 0
    err = capsys.readouterr().err
    assert "gk-error" in err and "gk-info" not in err
    text = log_file.read_text()
    assert all(w in text for w in ("gk-debug", "gk-info", "gk-warning", "gk-error", "other-warning"))
    assert "graphkit 0.1.0: -qq --log-file" in text  # a header line per run
    # after the subcommand too; an error: one line on the console, its traceback in the file
    assert main(["passes", "--json", "--log-file", str(log_file)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "graphkit: error: asked to fail"
    text = log_file.read_text()
    assert text.count("graphkit 0.1.0:") == 2  # appended
    assert "Traceback" in text and "graphkit: error: asked to fail" in text
    # in-process callers get their logging back, and the file is closed
    assert (gk.handlers, gk.level, gk.propagate, root.handlers, root.level) == before
    assert str(log_file.resolve()) not in open_files()


def test_log_file_that_cannot_be_written_is_one_line(chatty, tmp_path, capsys):
    assert main(["--log-file", str(tmp_path / "no" / "such" / "x.log"), "passes"]) == 2
    assert "--log-file" in one_error(capsys)


# -- 4. pass modules beside the user --------------------------------------------------------

PASS_MODULE = '''
import onnx_graphsurgeon as gs
from graphkit import EXACT, register_pass


@register_pass("{name}", contract=EXACT)
def {name}(graph: gs.Graph) -> int:
    """Rewrites nothing."""
    return 0
'''


def test_pass_modules_are_found_in_the_current_folder_then_beside_the_recipe(tmp_path, monkeypatch):
    here, near = f"here_{uuid.uuid4().hex[:8]}", f"near_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{here}.py").write_text(PASS_MODULE.format(name="in_cwd"))
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / f"{near}.py").write_text(PASS_MODULE.format(name="beside_recipe"))
    (recipes / f"{here}.py").write_text(PASS_MODULE.format(name="shadowed"))  # cwd comes first
    recipe = tiny_recipe(recipes, [f"{here}:in_cwd", f"{near}:beside_recipe", "set_batch_size"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    path = sys.path[:]
    assert [p.name for p in load_recipe(recipe).passes] == [
        f"{here}:in_cwd",
        f"{near}:beside_recipe",
        "set_batch_size",
    ]
    assert sys.path == path  # nothing outlives the import


def test_a_missing_pass_module_says_where_it_was_looked_for(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, ["no_such_passes_xyz:fn", "set_batch_size"])
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 2
    assert "the current folder, the recipe's folder and the installed packages" in one_error(capsys)


def test_the_console_script_imports_a_pass_module_from_the_current_folder(tmp_path):
    script = Path(sys.executable).with_name("graphkit")
    if not script.is_file():
        pytest.skip(f"{script}: graphkit is not installed as a console script here")
    (tmp_path / "my_passes.py").write_text(PASS_MODULE.format(name="my_noop"))
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "near_passes.py").write_text(PASS_MODULE.format(name="near_noop"))
    recipe = tiny_recipe(sub, ["my_passes:my_noop", "near_passes:near_noop", "set_batch_size"])
    argv = [str(script), "-q", "apply", str(recipe.relative_to(tmp_path)), "-o", "out"]
    argv += ["--no-parity", "--no-lint", "--no-emulate"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    names = [p["name"] for p in manifest["passes"]]
    assert "my_noop" in names and "near_noop" in names, names


# -- 5. a fast --version --------------------------------------------------------------------


def test_version_and_help_import_nothing_heavy():
    code = """
import contextlib, io, sys
from graphkit.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["--version"]) == 0
    assert main(["-v", "--version"]) == 0
    assert main(["--help"]) == 0
assert out.getvalue().startswith("graphkit 0.1.0\\n"), out.getvalue()
heavy = [m for m in ("onnx", "numpy", "onnxruntime", "yaml", "graphkit.recipe") if m in sys.modules]
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- 6. ort_cuda: CUDA, or an error ---------------------------------------------------------


def test_ort_cuda_without_cuda_is_one_line(tmp_path, monkeypatch, capsys):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    recipe = tiny_recipe(tmp_path)
    argv = ["bench", str(recipe), "--runner", "ort_cuda", "--models", str(tmp_path / "none")]
    assert main(argv) == 2
    line = one_error(capsys)
    assert line.startswith("graphkit: error: --runner ort_cuda: onnxruntime")
    assert "no CUDAExecutionProvider (its providers: CPUExecutionProvider)" in line
    assert "onnxruntime-gpu" in line and "--runner graphkit" in line


def test_a_session_that_falls_back_to_cpu_is_an_error(monkeypatch, caplog):
    """onnxruntime lists CUDA, but the session could not start it (a missing cuDNN)."""
    real = ort_runner.session
    gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort_runner, "session", lambda data, **kw: real(data, threads=kw.get("threads")))
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: gpu)
    model = tiny.conv1d_chain()
    with pytest.raises(RunnerUnavailable, match="could not start CUDAExecutionProvider and fell back to CPU"):
        ort_runner.OnnxruntimeRunner(model, providers="cuda")
    with pytest.raises(RunnerUnavailable, match="could not start CUDAExecutionProvider"):
        ort_runner.OnnxruntimeRunner(model, providers=gpu)
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        runner = ort_runner.OnnxruntimeRunner(model, providers="auto")  # best effort: a warning
    assert runner.providers == ("CPUExecutionProvider",)
    assert "could not start CUDAExecutionProvider" in caplog.text


def test_cuda_providers():
    cpu = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_runner.choose_providers("cuda", gpu) == gpu
    assert ort_runner.choose_providers("cuda", gpu[1:]) == gpu[1:]
    with pytest.raises(RunnerUnavailable, match="no CUDAExecutionProvider"):
        ort_runner.choose_providers("cuda", cpu)


def test_ort_cuda_is_labelled_ort_cuda():
    assert parse_runner("ort_cuda").label == "ort_cuda"
    assert parse_runner("graphkit").label == "graphkit"
