"""Interrupted runs leave no file under a final name; inputs are never overwritten; two applies
at once do not interfere and write nothing to the working directory."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import staging_leftovers
from test_apply import error_lines, write_recipe

from graphkit.cli import main

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def graphkit(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    cmd = [sys.executable, "-m", "graphkit", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_in_the_middle_of_a_pass_leaves_no_final_file(tmp_path, sig, code, word):
    passes = "- conv1d_to_conv2d\n- set_batch_size\n- pass: plugin_passes:wait_for_signal"
    recipe = write_recipe(tmp_path, passes)
    out = tmp_path / "out"
    proc = graphkit(["apply", str(recipe), "-o", str(out)], tmp_path)
    deadline = time.monotonic() + 60
    while not staging_leftovers(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the tiny model's other passes take milliseconds: now inside wait_for_signal
    assert proc.poll() is None
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"graphkit: {word}" in err and "Traceback" not in err
    assert not out.exists() and staging_leftovers(out) == []  # no final file, no staging


def test_output_over_an_input_is_refused(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out)]) == 0
    data = yaml.safe_load(recipe.read_text())
    data["source"]["onnx"] = "out/tiny_bs1.onnx"  # the earlier run's batch-1 model
    recipe.write_text(yaml.safe_dump(data))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["apply", str(recipe), "-o", str(out)]) == 2
    (line,) = error_lines(capsys)
    assert "would write" in line and "over its own input" in line and "tiny_bs1.onnx" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert staging_leftovers(out) == []


def test_an_input_inside_a_folder_apply_replaces_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["-q", "apply", str(write_recipe(tmp_path)), "-o", str(out), "--save-golden"]) == 0
    recipe = write_recipe(out / "golden")
    capsys.readouterr()
    assert main(["apply", str(recipe), "-o", str(out), "--save-golden"]) == 2
    assert "over its own input" in error_lines(capsys)[0]
    assert recipe.is_file()


def test_a_folder_of_other_files_is_not_taken_as_an_output_folder(tmp_path, capsys):
    recipe = write_recipe(tmp_path)  # tmp_path holds the recipe and its model, no manifest
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["apply", str(recipe), "-o", str(tmp_path)]) == 2
    (line,) = error_lines(capsys)
    assert "holds files but no manifest.json" in line and "name a new or empty folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_two_applies_at_once_do_not_interfere(tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    recipe = write_recipe(tmp_path)
    procs = [
        graphkit(["-q", "apply", str(recipe), "-o", str(tmp_path / f"out{i}"), "--save-golden"], work)
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    digest = [
        {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in (tmp_path / f"out{i}").glob("*.onnx")}
        for i in range(2)
    ]
    assert digest[0] == digest[1] and len(digest[0]) == 2
    assert list(work.iterdir()) == []  # nothing in the working directory
    for i in range(2):
        assert not list((tmp_path / f"out{i}").glob(".*"))  # no .part left behind
        assert staging_leftovers(tmp_path / f"out{i}") == []


def test_a_ctrl_c_that_a_native_import_turned_into_an_import_error_still_stops(tmp_path, capsys, monkeypatch):
    # numpy's and onnxruntime's C code report a Ctrl-C during their import as
    # ImportError("import numpy failed"); graphkit must not take it for a missing module
    (tmp_path / "native_like.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    raise ImportError('import numpy failed') from None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = write_recipe(tmp_path, "- pass: native_like:anything\n- set_batch_size")
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert "graphkit: interrupted" in err and "cannot import" not in err and "Traceback" not in err
    assert not out.exists()
