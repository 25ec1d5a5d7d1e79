"""OSErrors and the files that are not what their names say: one line, exit 2, nothing half-written.

Fault injection with real file systems: a tiny tmpfs gives a real ENOSPC, a read-only one a real
EROFS (root ignores chmod, so permissions cannot be tested this way). Where mounting is not
allowed (CI containers without CAP_SYS_ADMIN), those tests skip and say why.
"""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
import yaml
from test_apply import error_lines, write_recipe

from graphkit.cli import main
from graphkit.data.golden import load_golden
from graphkit.errors import DataError, ModelError, OutputError
from graphkit.ir.arrays import load_npy, load_npz
from graphkit.ir.io import atomic_path, write_bytes
from graphkit.recipe import load_recipe
from graphkit.runners.onnxruntime import OnnxruntimeRunner
from graphkit.runners.select import RecipeRunners, RunnerChoice

Mount = Callable[..., Path]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """``mount(name, "size=16k")`` or ``mount(name, "ro")``: a tmpfs under tmp_path, always
    unmounted at teardown."""
    mounted: list[Path] = []

    def make(name: str, options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'})")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def files_below(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def no_leftovers(root: Path) -> None:
    """No temporary file or staging folder of graphkit is left below ``root``."""
    left = [p.name for p in root.rglob("*") if p.name.endswith(".part") or "-stage-" in p.name]
    assert not left, left


# --- writing: a full disk, a read-only folder, a name too long for the temporary file ---------


def test_a_full_disk_mid_write_leaves_the_earlier_file_whole(mount) -> None:
    disk = mount("full", "size=64k")
    target = disk / "model.onnx"
    write_bytes(target, b"earlier run")
    with pytest.raises(OutputError, match=r"model\.onnx: cannot write it: No space left on device") as e:
        write_bytes(target, b"x" * 200_000)
    assert "free some space or choose another output folder" in str(e.value)
    assert target.read_bytes() == b"earlier run"
    assert files_below(disk) == ["model.onnx"]


def test_apply_into_a_full_disk_is_one_line(tmp_path, mount, capsys) -> None:
    recipe = write_recipe(tmp_path)
    disk = mount("full", "size=16k")  # the lock and a model fit, not the whole result
    assert main(["-q", "apply", str(recipe), "-o", str(disk / "out")]) == 2
    assert "No space left on device" in error_lines(capsys)[0]
    assert not (disk / "out").exists() or files_below(disk / "out") == []
    no_leftovers(disk)


def test_compare_into_a_full_disk_is_one_line(tmp_path, mount, capsys) -> None:
    onnx.save(tiny.conv1d_chain(), tmp_path / "a.onnx")
    disk = mount("full", "size=4k")
    (disk / "filler").write_bytes(b"x" * 4096)  # the disk is now full
    args = ["compare", str(tmp_path / "a.onnx"), str(tmp_path / "a.onnx"), "--batch", "1"]
    assert main([*args, "-o", str(disk / "cmp")]) == 2
    [line] = error_lines(capsys)
    assert "compare." in line and "No space left on device" in line
    assert files_below(disk) == ["filler"]
    no_leftovers(disk)


def test_a_read_only_output_folder_is_one_line(tmp_path, mount, capsys) -> None:
    recipe = write_recipe(tmp_path)
    ro = mount("ro", "ro")
    onnx.save(tiny.conv1d_chain(), tmp_path / "a.onnx")
    a = str(tmp_path / "a.onnx")
    assert main(["compare", a, a, "--batch", "1", "-o", str(ro / "cmp")]) == 2
    assert error_lines(capsys) == [
        f"graphkit: error: {ro / 'cmp'}: cannot create it: Read-only file system "
        "(a read-only file system: choose another output folder)"
    ]
    assert main(["-q", "apply", str(recipe), "-o", str(ro / "out")]) == 2
    assert "Read-only file system" in error_lines(capsys)[0]
    assert files_below(ro) == []


def test_a_file_where_the_output_folder_goes_is_one_line(tmp_path, capsys) -> None:
    onnx.save(tiny.conv1d_chain(), tmp_path / "a.onnx")
    (tmp_path / "taken").write_text("a file, not a folder")
    a = str(tmp_path / "a.onnx")
    assert main(["compare", a, a, "--batch", "1", "-o", str(tmp_path / "taken" / "cmp")]) == 2
    [line] = error_lines(capsys)
    assert f"{tmp_path / 'taken' / 'cmp'}: cannot create it: Not a directory" in line
    assert "a file stands where a folder of this path should be" in line
    assert (tmp_path / "taken").read_text() == "a file, not a folder"


@pytest.mark.parametrize("name", ["a" * 250 + ".onnx", "é" * 120 + "_bs1.onnx", "x" * 255])
def test_a_long_legal_name_gets_a_short_temporary_name(tmp_path, name) -> None:
    write_bytes(tmp_path / name, b"data")
    assert (tmp_path / name).read_bytes() == b"data"
    assert files_below(tmp_path) == [name]


def test_a_name_over_the_limit_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(OutputError, match="File name too long .choose a shorter name"):
        write_bytes(tmp_path / ("a" * 256), b"data")
    assert files_below(tmp_path) == []


def test_apply_with_a_long_recipe_name_writes_its_models(tmp_path, capsys) -> None:
    recipe = write_recipe(tmp_path)
    data = yaml.safe_load(recipe.read_text())
    data["name"] = "n" * 245  # n…n_bs1.onnx is 254 bytes: legal, its old temporary name was not
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out)]) == 0
    model = out / f"{'n' * 245}_bs1.onnx"
    onnx.checker.check_model(onnx.load(str(model)))
    no_leftovers(tmp_path)


def test_a_read_error_of_another_file_is_not_called_a_write_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes((tmp_path / "missing.txt").read_bytes())
    assert files_below(tmp_path) == []


# --- the safety net in the CLI ------------------------------------------------------------------


def _raise_enospc(args) -> int:
    raise OSError(errno.ENOSPC, "No space left on device", "/data/out/x.bin")


def test_an_oserror_nobody_caught_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr("graphkit.cli.passes.run", _raise_enospc)
    assert main(["passes"]) == 2
    assert error_lines(capsys) == ["graphkit: error: /data/out/x.bin: No space left on device"]
    assert main(["-v", "passes"]) == 2  # -v: the traceback is logged, the last line the error
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].endswith("x.bin: No space left on device")


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    def bug(args) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr("graphkit.cli.passes.run", bug)
    with pytest.raises(KeyError):
        main(["passes"])


# --- .npy and .npz files that are something else ------------------------------------------------


def npz_named_npy(path: Path) -> Path:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
        np.savez(f, a=np.zeros((4, 4, 16), np.float32))
    return path


def zip_named_npy(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "hello")
    return path


def npy_named_npz(path: Path) -> Path:
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    return path


def test_load_npy_says_what_the_file_really_is(tmp_path) -> None:
    with pytest.raises(DataError, match=r"a\.npy: the array is a \.npz \(zip\) archive, not a \.npy"):
        load_npy(npz_named_npy(tmp_path / "a.npy"))
    with pytest.raises(DataError, match="is a .npz .zip. archive"):
        load_npy(zip_named_npy(tmp_path / "z.npy"))
    (tmp_path / "t.npy").write_text("1 2 3")
    with pytest.raises(DataError, match="not a .npy file .it lacks numpy's magic bytes"):
        load_npy(tmp_path / "t.npy")
    good = tmp_path / "good.npy"
    np.save(good, np.arange(1000, dtype=np.float32))
    (tmp_path / "cut.npy").write_bytes(good.read_bytes()[:500])
    with pytest.raises(DataError, match=r"truncated or its header is corrupt.*\(1000,\) float32"):
        load_npy(tmp_path / "cut.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a readable .npy array .Object arrays cannot be loaded"):
        load_npy(tmp_path / "obj.npy")
    with pytest.raises(DataError, match="not a regular file"):
        load_npy("/dev/zero")
    assert load_npy(good).shape == (1000,)  # must not fire


def test_load_npz_says_what_the_file_really_is(tmp_path) -> None:
    with pytest.raises(DataError, match="is one .npy array, not a .npz archive"):
        load_npz(npy_named_npz(tmp_path / "a.npz"))
    with pytest.raises(DataError, match="holds 'notes.txt', which is not a .npy array"):
        load_npz(zip_named_npy(tmp_path / "z.npz"))
    (tmp_path / "t.npz").write_text("text")
    with pytest.raises(DataError, match="not a .npz file .not a zip archive"):
        load_npz(tmp_path / "t.npz")
    np.savez(tmp_path / "ok.npz", x=np.ones(2))
    assert list(load_npz(tmp_path / "ok.npz")) == ["x"]  # must not fire


def test_compare_golden_that_is_a_npy_or_a_zip_is_one_line(tmp_path, capsys) -> None:
    onnx.save(tiny.conv1d_chain(), tmp_path / "a.onnx")
    a = str(tmp_path / "a.onnx")
    fake = str(npy_named_npz(tmp_path / "golden.npz"))
    assert main(["compare", a, a, "--inputs", fake]) == 2
    assert error_lines(capsys) == [
        f"graphkit: error: {fake}: the golden file is one .npy array, not a .npz archive of named arrays"
    ]
    assert main(["compare", a, str(zip_named_npy(tmp_path / "other.npz"))]) == 2
    assert "holds 'notes.txt', which is not a .npy array" in error_lines(capsys)[0]
    assert main(["compare", str(npz_named_npy(tmp_path / "x.npy")), a]) == 2
    assert "a .npy array holds no tensor names (compare takes models, golden .npz" in error_lines(capsys)[0]
    assert not (tmp_path / "out").exists()


def test_a_real_golden_file_still_compares(tmp_path, capsys, monkeypatch) -> None:
    recipe = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out), "--save-golden"]) == 0
    golden = out / "golden" / "bs1.npz"
    assert load_golden(golden).batch == 1
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "compare", str(golden), str(out / "tiny_bs1.onnx")]) == 0


@pytest.mark.parametrize("maker", [npz_named_npy, zip_named_npy])
def test_recipe_npy_that_is_an_archive_is_one_line(tmp_path, capsys, maker) -> None:
    maker(tmp_path / "rows.npy")
    samples = {"samples": [{"input": "x", "npy": "rows.npy", "count": 2}]}
    recipe = write_recipe(tmp_path, extra={"parity": {"seed": 0, "batch": 2, **samples}})
    out = tmp_path / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out)]) == 2
    assert error_lines(capsys) == [
        f"graphkit: error: {tmp_path / 'rows.npy'}: the parity sample array is a .npz (zip) archive, "
        "not a .npy array; save one array with np.save, or take it out of the archive with np.load(path)[name]"
    ]
    assert not out.exists() or files_below(out) == []
    data = yaml.safe_load(recipe.read_text())
    del data["parity"]
    data["inputs"]["x"]["npy"] = "rows.npy"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["-q", "apply", str(recipe), "-o", str(out)]) == 2
    assert "the array for input 'x' is a .npz (zip) archive" in error_lines(capsys)[0]
    assert not out.exists() or files_below(out) == []


def test_recipe_npy_rows_still_work(tmp_path) -> None:
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).standard_normal((3, 4, 16)).astype(np.float32))
    samples = {"samples": [{"input": "x", "npy": "rows.npy", "count": 2}]}
    recipe = write_recipe(tmp_path, extra={"parity": {"seed": 0, "batch": 2, **samples}})
    assert main(["-q", "apply", str(recipe), "-o", str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "rows.npy" in json.dumps(manifest)


# --- an emitted model that cannot be read -------------------------------------------------------


@pytest.fixture
def emitted(tmp_path) -> tuple[Path, Path]:
    recipe = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out)]) == 0
    return recipe, out


def test_bench_on_a_corrupt_emitted_model_is_one_line(emitted, capsys) -> None:
    recipe, out = emitted
    model = out / "tiny_bs1.onnx"
    good = model.read_bytes()
    args = ["bench", str(recipe), "--runner", "graphkit", "--models", str(out), "--batch", "1"]
    assert main(["-q", *args, "--loops", "1", "--warmup", "0", "-o", str(out / "b")]) == 0  # must not fire
    model.write_bytes(good[: len(good) // 3])
    assert main([*args, "--loops", "1", "--warmup", "0", "-o", str(out / "b2")]) == 2
    [line] = error_lines(capsys)
    assert str(model) in line and ("not a readable ONNX model" in line or "manifest" in line)
    assert not (out / "b2").exists()


def test_files_runner_on_a_corrupt_emitted_model_names_it(emitted, tmp_path) -> None:
    recipe, out = emitted
    runners = RecipeRunners(load_recipe(recipe), models_dir=out)
    npu = tmp_path / "npu"
    npu.mkdir()
    (npu / "x0_0.bin").write_bytes(bytes(4 * 4 * 16))  # what ais_bench writes for output 0
    choice = RunnerChoice("files", str(npu))
    runners.open(choice, 1, label="npu").close()  # must not fire
    (out / "tiny_bs1.onnx").write_bytes(b"\x0a\xff\xff garbage")
    manifest = json.loads((out / "manifest.json").read_text())  # listed as written: a bad disk
    manifest["files"]["tiny_bs1.onnx"] = hashlib.sha256(b"\x0a\xff\xff garbage").hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"tiny_bs1\.onnx: not a readable ONNX model .DecodeError") as e:
        runners.open(choice, 1, label="npu")
    assert f"run `graphkit apply {recipe} -o {out}` to write it again" in str(e.value)


def test_onnxruntime_runner_names_the_bad_file(tmp_path) -> None:
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.onnx: the model file is empty"):
        OnnxruntimeRunner(tmp_path / "empty.onnx")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ModelError, match=r"dir\.onnx: is a folder, not an ONNX model file"):
        OnnxruntimeRunner(tmp_path / "dir.onnx")
    (tmp_path / "cut.onnx").write_bytes(tiny.conv1d_chain().SerializeToString()[:200])
    with pytest.raises(ModelError, match=r"cut\.onnx: not a readable ONNX model, or a truncated one"):
        OnnxruntimeRunner(tmp_path / "cut.onnx")


# --- text that is not UTF-8 ----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path, capsys, encoding) -> None:
    recipe = write_recipe(tmp_path)
    raw = recipe.read_text().replace("name: tiny", "name: tïny  # ï").encode(encoding)
    recipe.write_bytes(raw)
    byte = 0 if encoding == "utf-16" else raw.index("ï".encode(encoding))  # utf-16: its BOM
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 2
    assert error_lines(capsys) == [
        f"graphkit: error: {recipe}: not UTF-8 text (byte {byte}); save the recipe as UTF-8"
    ]
    assert not (tmp_path / "out").exists()


def test_a_utf8_recipe_with_a_byte_order_mark_still_loads(tmp_path) -> None:
    recipe = write_recipe(tmp_path)
    recipe.write_bytes(b"\xef\xbb\xbf" + recipe.read_bytes())
    assert load_recipe(recipe).name == "tiny"
