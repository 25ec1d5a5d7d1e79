"""Every consumer of an apply output folder checks it against manifest.json before any work.

A model left by an earlier apply (another recipe, other weights, another source), a model or
golden file copied in or edited since, a folder without a manifest: eval, bench and compare
refuse each with one line, exit 2, naming the folder, what differs and the apply to run; the
folder's files stay as they were. The normal apply-then-consume flow still works.

(bisect runs the recipe's passes itself and preprocess reads no model: neither reads a folder.)
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import onnx
import pytest
import tiny
import yaml
from conftest import ROOT
from test_apply import error_lines, write_recipe

from graphkit.cli import main
from graphkit.errors import UsageError
from graphkit.pipeline import verify
from graphkit.recipe import load_recipe
from graphkit.runners.select import RecipeRunners, RunnerChoice

ECAPA = str(ROOT / "recipes" / "ecapa.yaml")
BENCH = ("--runner", "graphkit", "--loops", "1", "--warmup", "0")


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its sha256: what must not change when a check refuses."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def apply(recipe: Path, out: Path, *args: str) -> Path:
    assert main(["-q", "apply", str(recipe), "-o", str(out), *args]) == 0
    return out


@pytest.fixture
def emitted(tmp_path: Path) -> tuple[Path, Path]:
    """The tiny recipe applied (batch sizes 1 and 3) with its golden files."""
    recipe = write_recipe(tmp_path)
    return recipe, apply(recipe, tmp_path / "out", "--save-golden")


def bench(recipe: Path, out: Path, report: Path, *args: str) -> int:
    return main(["bench", str(recipe), "--models", str(out), *BENCH, "-o", str(report), *args])


def refused(capsys, code: int, *parts: str) -> str:
    assert code == 2
    [line] = error_lines(capsys)
    for part in parts:
        assert part in line, line
    return line


# --- bench (and the runners behind eval) on the tiny ONNX recipe ---------------------------


def test_bench_after_apply_works(emitted, tmp_path) -> None:
    recipe, out = emitted
    assert bench(recipe, out, tmp_path / "b1") == 0  # must not fire
    assert bench(recipe, out, tmp_path / "b2", "--batch", "3") == 0
    assert (tmp_path / "b2").is_dir()


def test_bench_refuses_a_model_of_another_apply(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    (tmp_path / "other").mkdir()
    other = write_recipe(tmp_path / "other", model=tiny.conv1d_chain(seed=5))  # other weights
    foreign = apply(other, tmp_path / "other" / "out")
    shutil.copy(foreign / "tiny_bs1.onnx", out / "tiny_bs1.onnx")  # the stale model
    before = digests(out)
    line = refused(capsys, bench(recipe, out, tmp_path / "b"), f"{out / 'tiny_bs1.onnx'}: changed since")
    assert f"run `graphkit apply {recipe} -o {out}` to write it again" in line
    assert digests(out) == before and not (tmp_path / "b").exists()


def test_bench_refuses_a_flipped_byte(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    model = out / "tiny_bs3.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01  # still a loadable model: only the hash tells
    model.write_bytes(bytes(data))
    refused(capsys, bench(recipe, out, tmp_path / "b", "--batch", "3"), "tiny_bs3.onnx: changed since")
    assert bench(recipe, out, tmp_path / "b1", "--batch", "1") == 0  # the other model is still good


def test_bench_refuses_another_recipe(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    data = yaml.safe_load(recipe.read_text())
    data["passes"] = data["passes"][:-1]  # an edited recipe: its models are not in the folder
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    before = digests(out)
    line = refused(
        capsys, bench(recipe, out, tmp_path / "b"), f"{out}: written for another recipe or an earlier version"
    )
    assert f"run `graphkit apply {recipe} -o {out}`" in line
    assert digests(out) == before


def test_bench_refuses_another_version_of_the_onnx_source(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    onnx.save(tiny.conv1d_chain(seed=7), tmp_path / "tiny.onnx")  # other weights, same recipe
    refused(capsys, bench(recipe, out, tmp_path / "b"), f"{out}: applied to another version of the source")


def test_bench_refuses_a_folder_without_manifest(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    (out / "manifest.json").unlink()
    refused(capsys, bench(recipe, out, tmp_path / "b"), f"{out}: its manifest.json is missing")
    (out / "manifest.json").write_text("{not json")
    refused(capsys, bench(recipe, out, tmp_path / "b"), "manifest.json cannot be read")


def test_bench_refuses_a_model_the_last_apply_did_not_write(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    old = (out / "tiny_bs3.onnx").read_bytes()
    apply(recipe, out, "--batch", "1")  # the re-run drops bs3 ...
    assert not (out / "tiny_bs3.onnx").exists()
    (out / "tiny_bs3.onnx").write_bytes(old)  # ... and an old copy comes back
    line = refused(capsys, bench(recipe, out, tmp_path / "b", "--batch", "3"), "not written by the apply")
    assert "tiny_bs3.onnx" in line


def test_files_runner_checks_the_model_it_reads_shapes_from(emitted, tmp_path) -> None:
    recipe, out = emitted
    npu = tmp_path / "npu"
    npu.mkdir()
    runners = RecipeRunners(load_recipe(recipe), models_dir=out)
    runners.check([RunnerChoice("files", str(npu))], [1])  # must not fire
    shutil.copy(out / "tiny_bs3.onnx", out / "tiny_bs1.onnx")
    with pytest.raises(UsageError, match=r"tiny_bs1\.onnx: changed since graphkit apply wrote it"):
        runners.check([RunnerChoice("files", str(npu))], [1])


def test_ais_bench_checks_the_manifest_of_its_om(emitted, monkeypatch) -> None:
    """The .om is not listed (ATC wrote it); the .onnx it was compiled from must be."""
    import graphkit.runners.ais_bench as ais

    recipe, out = emitted
    monkeypatch.setattr(ais, "_import_interface", lambda: None)  # no CANN here
    for b in (1, 3):
        (out / f"tiny_bs{b}.om").write_bytes(b"om")
    runners = RecipeRunners(load_recipe(recipe), models_dir=out)
    runners.check([RunnerChoice("ais_bench")], [1, 3])  # must not fire
    (out / "tiny_bs3.onnx").unlink()  # an NPU host need not keep the .onnx
    runners.check([RunnerChoice("ais_bench")], [3])
    (out / "tiny_bs2.om").write_bytes(b"om")
    with pytest.raises(UsageError, match=r"tiny_bs2\.om: compiled from a model the last apply"):
        runners.check([RunnerChoice("ais_bench")], [2])
    (out / "manifest.json").unlink()
    with pytest.raises(UsageError, match="manifest.json is missing"):
        runners.check([RunnerChoice("ais_bench")], [1])


def test_each_file_is_hashed_once(emitted, monkeypatch) -> None:
    recipe, out = emitted
    calls: list[str] = []
    real = verify.sha256_file
    monkeypatch.setattr(verify, "sha256_file", lambda p: calls.append(str(p)) or real(p))
    verify._cached_sha256.cache_clear()
    runners = RecipeRunners(load_recipe(recipe), models_dir=out)
    for _ in range(3):
        runners.check([RunnerChoice("graphkit")], [1, 3])
    models = [c for c in calls if c.endswith(".onnx") and "_bs" in c]
    assert sorted(Path(c).name for c in models) == ["tiny_bs1.onnx", "tiny_bs3.onnx"]


# --- compare: a model or golden file inside an output folder --------------------------------


def compare(a: Path, b: Path, tmp_path: Path, *extra: str) -> int:
    return main(["-q", "compare", str(a), str(b), "-o", str(tmp_path / "cmp"), *extra])


def test_compare_of_an_apply_folder_works(emitted, tmp_path) -> None:
    _, out = emitted
    assert compare(out / "tiny_bs3.onnx", out / "golden" / "bs3.npz", tmp_path) == 0  # must not fire
    mine = out / "mine.onnx"  # a user's file in the folder: apply keeps it, compare takes it
    shutil.copy(tmp_path / "tiny.onnx", mine)
    assert compare(mine, out / "tiny_bs1.onnx", tmp_path, "--batch", "1") == 0


def test_compare_refuses_a_stale_golden(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    golden = out / "golden" / "bs3.npz"
    shutil.copy(out / "golden" / "bs1.npz", golden)  # a golden of another batch under its name
    before = digests(out)
    line = refused(capsys, compare(out / "tiny_bs3.onnx", golden, tmp_path), f"{golden}: changed since")
    assert f"run `graphkit apply {recipe} -o {out}`" in line
    assert digests(out) == before


def test_compare_refuses_an_unlisted_golden(emitted, tmp_path, capsys) -> None:
    recipe, out = emitted
    old = (out / "golden" / "bs3.npz").read_bytes()
    apply(recipe, out)  # without --save-golden: golden/ is dropped ...
    (out / "golden").mkdir()
    (out / "golden" / "bs3.npz").write_bytes(old)  # ... and an old one comes back
    refused(
        capsys,
        compare(out / "tiny_bs3.onnx", out / "golden" / "bs3.npz", tmp_path),
        "not written by the apply",
    )


def test_compare_refuses_an_edited_model(emitted, tmp_path, capsys) -> None:
    _, out = emitted
    onnx.save(tiny.conv1d_chain(seed=3), out / "tiny_bs1.onnx")
    refused(
        capsys, compare(out / "tiny_bs1.onnx", out / "golden" / "bs1.npz", tmp_path), "tiny_bs1.onnx: changed"
    )


# --- eval on ECAPA: weights ----------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from graphkit.models.ecapa import build_ecapa

    path = tmp_path_factory.mktemp("ckpt") / "ecapa.pt"
    torch.save(build_ecapa(seed=1).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def ecapa_trained(tmp_path_factory, checkpoint) -> Path:
    """`graphkit apply recipes/ecapa.yaml --batch 1 --weights ecapa.pt`."""
    out = tmp_path_factory.mktemp("ecapa_w") / "out"
    return apply(Path(ECAPA), out, "--batch", "1", "--weights", str(checkpoint), "--no-parity")


def eval_args(data: Path, models: Path, report: Path, *extra: str) -> list[str]:
    return [
        "eval",
        ECAPA,
        "--data",
        str(data),
        "--models",
        str(models),
        "--batch",
        "1",
        "-o",
        str(report),
        *extra,
    ]


def test_eval_with_the_weights_it_was_applied_with_works(
    librispeech, ecapa_trained, checkpoint, tmp_path
) -> None:
    runners = ("--runner", "torch", "--runner", "graphkit")  # the pair the check is about
    weights = ("--weights", str(checkpoint))
    args = eval_args(librispeech, ecapa_trained, tmp_path / "e", *weights, "--limit", "12", *runners)
    assert main(["-q", *args]) == 0  # must not fire
    assert (tmp_path / "e").is_dir()


def test_eval_refuses_a_missing_weights(librispeech, ecapa_trained, checkpoint, tmp_path, capsys) -> None:
    code = main(eval_args(librispeech, ecapa_trained, tmp_path / "e"))
    line = refused(
        capsys, code, f"{ecapa_trained}: applied with weights {checkpoint}, but no --weights given"
    )
    assert f"give --weights {checkpoint}" in line
    assert not (tmp_path / "e").exists()


def test_eval_refuses_weights_on_a_seeded_folder(
    librispeech, ecapa_bs1, checkpoint, tmp_path, capsys
) -> None:
    code = main(eval_args(librispeech, ecapa_bs1, tmp_path / "e", "--weights", str(checkpoint)))
    line = refused(capsys, code, f"{ecapa_bs1}: applied with seeded weights, not {checkpoint}")
    assert f"run `graphkit apply {ECAPA} -o {ecapa_bs1} --weights {checkpoint}`" in line


def test_eval_refuses_other_weights(librispeech, ecapa_trained, checkpoint, tmp_path, capsys) -> None:
    other = tmp_path / "other.pt"
    shutil.copy(checkpoint, other)
    with other.open("ab") as f:
        f.write(b"\0")  # another file: another hash
    code = main(eval_args(librispeech, ecapa_trained, tmp_path / "e", "--weights", str(other)))
    refused(capsys, code, f"{ecapa_trained}: applied with other weights ({checkpoint}")


def test_eval_refuses_a_model_of_an_earlier_apply(
    librispeech, ecapa_bs1, ecapa_trained, checkpoint, tmp_path, capsys
) -> None:
    """The issue's case: a seeded model under the name of a trained one (min cosine 0.006)."""
    out = tmp_path / "out"
    shutil.copytree(ecapa_trained, out)
    shutil.copy(ecapa_bs1 / "ecapa_tdnn_bs1.onnx", out / "ecapa_tdnn_bs1.onnx")
    before = digests(out)
    code = main(eval_args(librispeech, out, tmp_path / "e", "--weights", str(checkpoint)))
    refused(capsys, code, f"{out / 'ecapa_tdnn_bs1.onnx'}: changed since graphkit apply wrote it")
    assert digests(out) == before and not (tmp_path / "e").exists()


def test_eval_refuses_a_missing_weights_file(librispeech, ecapa_bs1, tmp_path, capsys) -> None:
    code = main(eval_args(librispeech, ecapa_bs1, tmp_path / "e", "--weights", str(tmp_path / "no.pt")))
    refused(capsys, code, "--weights: file not found", str(tmp_path / "no.pt"))  # before any hash
