"""graphkit.data.golden: save/load round trip, NPU input files, and golden vs NPU output folders."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphkit.cli import main
from graphkit.data.golden import FORMAT, PRODUCER, load_golden, save_golden, write_golden_inputs
from graphkit.debug.compare_run import compare_paths
from graphkit.errors import DataError

META = {"recipe": "tiny", "recipe_sha256": "ab" * 32, "seed": 0, "batch": 2}


def make_golden(path: Path) -> Path:
    rng = np.random.default_rng(0)
    inputs = {"mel": rng.standard_normal((2, 3, 4)).astype(np.float32), "len": np.array([4, 3], np.int64)}
    outputs = {
        "emb": rng.standard_normal((2, 5)).astype(np.float32),
        "/head/Softmax_output_0": rng.random((2, 3)).astype(np.float32),  # a torch-style name
    }
    return save_golden(path, inputs=inputs, outputs=outputs, meta=META)


def test_round_trip(tmp_path: Path) -> None:
    path = make_golden(tmp_path / "golden" / "bs2.npz")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]
    with np.load(path, allow_pickle=False) as z:  # plain numpy reads it
        assert sorted(z.files)[0] == "__meta__" and "output//head/Softmax_output_0" in z.files
    g = load_golden(path)
    assert list(g.inputs) == ["mel", "len"] and list(g.outputs) == ["emb", "/head/Softmax_output_0"]
    assert g.key == "mel0" and g.batch == 2
    assert g.inputs["len"].dtype == np.int64 and g.outputs["emb"].shape == (2, 5)
    assert g.meta["format"] == FORMAT and g.meta["version"] == 1 and g.meta["producer"] == PRODUCER
    assert g.meta["recipe_sha256"] == "ab" * 32 and g.meta["inputs"] == ["mel", "len"]
    assert "graphkit_version" in g.meta


def test_save_needs_the_recipe_meta(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="recipe_sha256"):
        save_golden(
            tmp_path / "g.npz", inputs={"x": np.ones(1)}, outputs={"y": np.ones(1)}, meta={"recipe": "r"}
        )


def test_corrupt_and_foreign_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_golden(tmp_path / "none.npz")
    good = make_golden(tmp_path / "g.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="not a readable .npz"):
        load_golden(tmp_path / "cut.npz")
    np.savez(tmp_path / "plain.npz", y=np.ones(2))
    with pytest.raises(DataError, match="not a graphkit golden file"):
        load_golden(tmp_path / "plain.npz")
    np.savez(tmp_path / "other.npz", __meta__=np.array(json.dumps({"format": "x"})))
    with pytest.raises(DataError, match="format is not"):
        load_golden(tmp_path / "other.npz")
    meta = {**META, "format": FORMAT, "version": 1, "inputs": ["x"], "outputs": ["y", "z"]}
    np.savez(
        tmp_path / "short.npz",
        __meta__=np.array(json.dumps(meta)),
        **{"input/x": np.ones(1), "output/y": np.ones(1)},
    )
    with pytest.raises(DataError, match="does not match the output/ entries"):
        load_golden(tmp_path / "short.npz")
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as z:
        z.writestr("__meta__.npy", b"garbage")
    with pytest.raises(DataError):
        load_golden(tmp_path / "text.npz")


def test_write_golden_inputs_uses_the_preprocess_layout(tmp_path: Path) -> None:
    g = load_golden(make_golden(tmp_path / "bs2.npz"))
    stale = tmp_path / "bs2" / "mel" / "mel1.bin"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    files = write_golden_inputs(g, tmp_path / "bs2")
    assert files == [tmp_path / "bs2" / "mel" / "mel0.bin", tmp_path / "bs2" / "len" / "len0.bin"]
    assert not stale.exists()
    back = np.fromfile(files[0], dtype="<f4").reshape(2, 3, 4)
    np.testing.assert_array_equal(back, g.inputs["mel"])
    np.testing.assert_array_equal(np.fromfile(files[1], dtype="<i8"), g.inputs["len"])


def write_npu_outputs(folder: Path, g, fmt: str, scale: dict[str, float] | None = None) -> None:  # noqa: ANN001
    """What msame (TXT) or ais_bench (BIN) leave on the NPU host, in a timestamped subfolder."""
    out = folder / "2024_01_01-00_00_00"
    out.mkdir(parents=True)
    for i, (name, value) in enumerate(g.outputs.items()):
        v = value * (scale or {}).get(name, 1.0)
        if fmt == "bin":
            v.astype("<f4").tofile(out / f"{g.key}_{i}.bin")
        else:
            rows = "\n".join(" ".join(f"{x:.7g}" for x in row) for row in v.reshape(v.shape[0], -1))
            (out / f"{g.key}_output_{i}.txt").write_text(rows + "\n")


@pytest.mark.parametrize("fmt", ["bin", "txt"])
def test_golden_vs_npu_folder(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_golden(tmp_path / "bs2.npz")
    g = load_golden(path)
    write_npu_outputs(tmp_path / "ok", g, fmt)
    write_npu_outputs(tmp_path / "off", g, fmt, scale={"/head/Softmax_output_0": 1.3})
    assert main(["-q", "compare", str(path), str(tmp_path / "ok"), "-o", str(tmp_path / "r1")]) == 0
    report = compare_paths(path, tmp_path / "ok")
    assert report.mode == "golden-files" and all(r.is_output and not r.abnormal for r in report.rows)
    assert [r.shape_candidate for r in report.rows] == [(2, 5), (2, 3)]

    assert main(["-q", "compare", str(tmp_path / "off"), str(path), "-o", str(tmp_path / "r2")]) == 1
    assert "first divergent tensor: /head/Softmax_output_0" in capsys.readouterr().out
    report = compare_paths(path, tmp_path / "off")
    flagged = [r.tensor for r in report.rows if r.abnormal]
    assert flagged == ["/head/Softmax_output_0"]
    assert any("rel-euclid" in t for t in report.rows[1].tripped)


def test_golden_vs_folder_missing_an_output(tmp_path: Path) -> None:
    path = make_golden(tmp_path / "bs2.npz")
    g = load_golden(path)
    write_npu_outputs(tmp_path / "npu", g, "bin")
    (tmp_path / "npu" / "2024_01_01-00_00_00" / "mel0_1.bin").unlink()
    with pytest.raises(DataError, match="mel0_1.bin"):
        compare_paths(path, tmp_path / "npu")


def test_golden_vs_golden(tmp_path: Path) -> None:
    a = make_golden(tmp_path / "a.npz")
    g = load_golden(a)
    outs = dict(g.outputs)
    outs["emb"] = outs["emb"] + 1.0
    b = save_golden(tmp_path / "b.npz", inputs=g.inputs, outputs=outs, meta=META)
    report = compare_paths(a, b)
    assert report.mode == "golden-golden" and not report.outputs_ok and report.notes == []
    assert report.first_divergent is not None and report.first_divergent.tensor == "emb"
    assert compare_paths(a, a).outputs_ok
