"""apply publishes its output folder whole: a re-run, a crash, a SIGKILL at any step of the swap
or a second run into the same folder never leaves a mix of two runs, and never loses a file
graphkit did not write."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import tiny
from conftest import staging_leftovers
from test_apply import error_lines, write_recipe

from graphkit.cli import main
from graphkit.ir.publish import sibling_key

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symlinks as their target) → its sha256."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[p.relative_to(folder).as_posix()] = f"-> {os.readlink(p)}"
        elif p.is_file():
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_complete(out: Path) -> dict:
    """``out`` holds exactly one run's result: every file its manifest lists, as listed."""
    manifest = json.loads((out / "manifest.json").read_text())
    files = tree(out)
    for rel, digest in manifest["files"].items():
        assert files[rel] == digest, rel
    return manifest


def apply(recipe: Path, out: Path, *flags: str) -> int:
    return main(["-q", "apply", str(recipe), "-o", str(out), *flags])


def test_a_rerun_drops_the_earlier_runs_files_and_keeps_the_users(tmp_path):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out, "--save-golden", "--dump-passes") == 0
    first = assert_complete(out)
    assert {"golden/bs3.npz", "tiny_bs3.onnx"} <= set(first["files"])
    assert any(f.startswith("passes/") for f in first["files"])
    (out / "tiny_bs1.om").write_bytes(b"compiled by atc")  # the user's files
    (out / "eval").mkdir()
    (out / "eval" / "eval.json").write_text("{}")  # an older graphkit's report
    (out / "eval" / "20250101T000000Z").mkdir()  # a run of eval and its latest link
    (out / "eval" / "20250101T000000Z" / "eval.json").write_text("{}")
    (out / "eval" / "latest").symlink_to("20250101T000000Z", target_is_directory=True)
    (out / "notes").symlink_to("/nonexistent/notes.txt")

    assert apply(recipe, out, "--batch", "1") == 0
    second = assert_complete(out)
    assert set(second["files"]) == {"tiny_bs1.onnx", "atc.sh", "fusion_switch.cfg"}
    reports = {"eval/eval.json", "eval/20250101T000000Z/eval.json", "eval/latest"}
    assert set(tree(out)) == {*second["files"], "manifest.json", "tiny_bs1.om", *reports, "notes"}
    assert os.readlink(out / "eval" / "latest") == "20250101T000000Z"
    assert (out / "tiny_bs1.om").read_bytes() == b"compiled by atc"
    assert os.readlink(out / "notes") == "/nonexistent/notes.txt"
    assert staging_leftovers(out) == []


def test_the_output_folder_keeps_its_mode(tmp_path):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out, "--batch", "1") == 0
    assert (out.stat().st_mode & 0o777) == 0o777 & ~_umask()  # not mkdtemp's 0700
    out.chmod(0o750)
    assert apply(recipe, out, "--batch", "1") == 0
    assert (out.stat().st_mode & 0o777) == 0o750


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


KILLER = r"""
import os, signal, sys
import graphkit.ir.publish as pub

point = sys.argv[1]
real_swap, real_rename = pub._swap, os.rename

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before_swap":
    pub._swap = lambda staging, target: die()
elif point == "after_exchange":
    def swap(staging, target):
        assert pub._exchange(staging, target)
        die()
    pub._swap = swap
elif point == "between_renames":  # where renameat2 is missing: two renames
    pub._exchange = lambda a, b: False
    def rename(a, b):
        real_rename(a, b)
        if ".graphkit-old-" in str(b):
            die()
    os.rename = rename

from graphkit.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("point", ["before_swap", "after_exchange", "between_renames"])
def test_sigkill_while_publishing_never_leaves_a_mix(tmp_path, point, capsys):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out) == 0
    earlier = tree(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    cmd = [sys.executable, "-c", KILLER, point, "-q", "apply", str(recipe), "-o", str(out), "--batch", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if point == "before_swap":
        assert tree(out) == earlier
    elif point == "after_exchange":
        assert set(assert_complete(out)["files"]) == {"tiny_bs1.onnx", "atc.sh", "fusion_switch.cfg"}
    else:
        assert not out.exists()  # moved aside, whole: the next run into the folder restores it
    assert staging_leftovers(out)  # what the killed run left beside the folder...

    bad = write_recipe(tmp_path, "- pass: plugin_passes:scale_first_conv_weight\n- set_batch_size")
    capsys.readouterr()
    assert apply(bad, out) == 1  # ...is cleaned up by the next run, even a failing one
    assert staging_leftovers(out) == []
    if point != "after_exchange":
        assert tree(out) == earlier


def test_a_second_apply_into_a_busy_folder_is_refused(tmp_path, capsys):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out) == 0
    earlier = tree(out)
    slow = tmp_path / "slow"
    slow.mkdir()
    slow_recipe = write_recipe(slow, "- set_batch_size\n- pass: plugin_passes:wait_for_signal")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    first = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "apply", str(slow_recipe), "-o", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not staging_leftovers(out) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the tiny model's other steps take milliseconds: now inside wait_for_signal
    try:
        capsys.readouterr()
        assert apply(recipe, out) == 2
        (line,) = error_lines(capsys)
        assert f"another graphkit run (graphkit apply pid {first.pid}) is writing this folder" in line
        assert tree(out) == earlier
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert tree(out) == earlier and staging_leftovers(out) == []
    assert apply(recipe, out) == 0  # the lock went with the interrupted run


def test_a_folder_where_a_file_goes_is_refused_before_any_work(tmp_path, capsys):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out, "--batch", "1") == 0
    (out / "tiny_bs3.onnx").mkdir()
    (out / "tiny_bs3.onnx" / "keep.txt").write_text("mine")
    before = tree(out)
    capsys.readouterr()
    assert apply(recipe, out) == 2
    (line,) = error_lines(capsys)
    assert "tiny_bs3.onnx: a folder where graphkit writes a file; move it away" in line
    assert tree(out) == before and staging_leftovers(out) == []


def test_a_symlink_where_a_file_goes_is_replaced_not_written_through(tmp_path):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out, "--batch", "1") == 0
    elsewhere = tmp_path / "elsewhere.onnx"
    elsewhere.write_bytes(b"not ours")
    (out / "tiny_bs3.onnx").symlink_to(elsewhere)
    assert apply(recipe, out) == 0
    assert not (out / "tiny_bs3.onnx").is_symlink()
    assert elsewhere.read_bytes() == b"not ours"
    assert_complete(out)


def test_a_symlinked_output_folder_stays_a_symlink(tmp_path):
    recipe, real, link = write_recipe(tmp_path), tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    assert apply(recipe, link) == 0
    assert link.is_symlink() and (real / "manifest.json").is_file()
    assert apply(recipe, link, "--batch", "1") == 0
    assert link.is_symlink() and not (real / "tiny_bs3.onnx").exists()


def test_external_data_named_like_an_output_is_refused(tmp_path, capsys):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out, "--batch", "1") == 0
    onnx.save_model(  # the source lives in the folder; its weights file has an output's name
        tiny.conv1d_chain(),
        str(out / "src.onnx"),
        save_as_external_data=True,
        location="tiny_bs3.onnx",
        size_threshold=0,
    )
    recipe.write_text(recipe.read_text().replace("onnx: tiny.onnx", "onnx: out/src.onnx"))
    before = tree(out)
    capsys.readouterr()
    assert apply(recipe, out) == 2
    (line,) = error_lines(capsys)
    assert "would write" in line and "tiny_bs3.onnx over its own input" in line
    assert tree(out) == before


def test_output_paths_that_cannot_be_a_result_folder(tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    assert apply(recipe, tmp_path / "file.txt" / "out") == 2
    assert "file.txt is a file, not a folder" in error_lines(capsys)[0]
    assert apply(recipe, tmp_path / "file.txt") == 2
    assert "exists and is not a folder" in error_lines(capsys)[0]
    out = tmp_path / "out"
    assert apply(recipe, out) == 0
    monkeypatch.chdir(out)
    capsys.readouterr()
    assert apply(recipe, Path(".")) == 2
    assert "is the current folder or holds it" in error_lines(capsys)[0]


def test_leftovers_of_a_killed_run_of_an_older_graphkit_are_dropped(tmp_path):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert apply(recipe, out) == 0
    (out / ".graphkit-abc123").mkdir()  # graphkit 0.11 staged inside the folder
    (out / ".graphkit-abc123" / "tiny_bs1.onnx").write_bytes(b"half")
    (out / ".atc.sh.x1y2.part").write_bytes(b"half")
    stale = out.parent / f"{sibling_key(out)}.graphkit-stage-1-xyz"
    stale.mkdir()
    assert apply(recipe, out) == 0
    assert not (out / ".graphkit-abc123").exists() and not (out / ".atc.sh.x1y2.part").exists()
    assert not stale.exists()
    assert_complete(out)


def test_a_report_writer_waits_for_the_folder_lock(tmp_path):
    import threading

    from graphkit.ir.publish import folder_lock, take_lock

    out = tmp_path / "out"
    out.mkdir()
    held = take_lock(out, "apply", wait=False)
    entered = threading.Event()

    def writer() -> None:
        with folder_lock(out, "eval"):
            entered.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert not entered.wait(0.5)  # blocked while apply holds the folder
    os.close(held)
    assert entered.wait(10)
    thread.join()
