"""Preprocess: batches in dataset order, the padded last batch, bin files and index.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import staging_leftovers

from graphkit.data.preprocess import Batch, batch_key, make_batches, read_index, write_batches
from graphkit.errors import DataError, UsageError
from graphkit.recipe import InputSpec

MEL = InputSpec("mel", ("B", 3, 5))
LEN = InputSpec("lengths", ("B",), "int32")


def rows(data: np.ndarray, calls: list | None = None):
    def rows_for(items):
        if calls is not None:
            calls.append(list(items))
        return {"mel": data[list(items)], "lengths": np.array(items, dtype=np.int64) + 100}

    return rows_for


def data(n: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, 3, 5)).astype(np.float32)


def test_make_batches_pads_the_last_with_its_last_item() -> None:
    assert make_batches(5, 2) == [Batch(0, (0, 1), 2), Batch(1, (2, 3), 2), Batch(2, (4, 4), 1)]
    assert make_batches(4, 2) == [Batch(0, (0, 1), 2), Batch(1, (2, 3), 2)]
    assert make_batches(2, 4) == [Batch(0, (0, 1, 1, 1), 2)]
    assert make_batches(3, 1) == [Batch(k, (k,), 1) for k in range(3)]
    assert all(b.size == 16 for b in make_batches(33, 16))
    with pytest.raises(UsageError, match="batch size must be >= 1"):
        make_batches(3, 0)
    with pytest.raises(DataError, match="no items"):
        make_batches(0, 4)


def test_write_and_read_back(tmp_path: Path) -> None:
    x, calls = data(5), []
    ids = [f"id1/u{i}.wav" for i in range(5)]
    meta = {"recipe_sha256": "abc", "dataset_root": "/data/vox"}
    path = write_batches(tmp_path, make_batches(5, 2), rows(x, calls), [MEL, LEN], meta, ids=ids)
    assert path == tmp_path / "index.json"
    assert calls == [[0, 1], [2, 3], [4]]  # rows_for sees only valid items: a crop is drawn once
    assert sorted(p.name for p in (tmp_path / "mel").iterdir()) == ["mel0.bin", "mel1.bin", "mel2.bin"]
    assert sorted(p.name for p in (tmp_path / "lengths").iterdir()) == [
        "lengths0.bin",
        "lengths1.bin",
        "lengths2.bin",
    ]
    # raw C-order little-endian float32, (B, 3, 5): what msame/ais_bench feed the om
    raw = np.fromfile(tmp_path / "mel" / "mel2.bin", dtype="<f4").reshape(2, 3, 5)
    np.testing.assert_array_equal(raw, np.stack([x[4], x[4]]))
    assert (tmp_path / "lengths" / "lengths2.bin").stat().st_size == 2 * 4  # int64 rows stored as int32

    index = read_index(tmp_path)
    assert index.batch_size == 2 and index.meta == meta
    assert [s.name for s in index.inputs] == ["mel", "lengths"] and index.inputs[1].dtype == "int32"
    assert [e.key for e in index.batches] == ["mel0", "mel1", "mel2"]
    assert index.batches[2].batch == Batch(2, (4, 4), 1) and index.batches[2].ids == ("id1/u4.wav",)
    assert index.batches[0].ids == ("id1/u0.wav", "id1/u1.wav")
    feeds = index.feeds(index.batches[1])
    np.testing.assert_array_equal(feeds["mel"], x[2:4])
    np.testing.assert_array_equal(feeds["lengths"], np.array([102, 103], np.int32))
    assert feeds["lengths"].dtype == np.int32

    on_disk = json.loads(path.read_text())
    assert on_disk["inputs"][0] == {
        "name": "mel",
        "shape": [2, 3, 5],
        "spec_shape": ["B", 3, 5],
        "dtype": "float32",
    }
    assert on_disk["batches"][2] == {
        "key": "mel2",
        "index": 2,
        "valid": 1,
        "items": [4, 4],
        "ids": ["id1/u4.wav"],
    }


def test_keys_follow_the_first_input() -> None:
    assert batch_key("mel", 0) == "mel0" and batch_key("input", 12) == "input12"


def test_default_ids_and_non_leading_batch_axis(tmp_path: Path) -> None:
    spec = InputSpec("feats", (3, "N"))
    x = np.arange(3 * 3, dtype=np.float32).reshape(3, 3)  # (3, N=3): rows along axis 1
    write_batches(tmp_path, make_batches(3, 2), lambda items: {"feats": x[:, list(items)]}, [spec], {})
    index = read_index(tmp_path)
    assert index.batches[1].ids == ("2",) and index.batches[1].key == "feats1"
    np.testing.assert_array_equal(index.feeds(index.batches[1])["feats"], x[:, [2, 2]])


def test_rewrite_removes_stale_batches(tmp_path: Path) -> None:
    write_batches(tmp_path, make_batches(5, 1), rows(data(5)), [MEL], {})
    (tmp_path / "mel" / "notes.txt").write_text("kept")
    write_batches(tmp_path, make_batches(5, 4), rows(data(5)), [MEL], {})
    assert sorted(p.name for p in (tmp_path / "mel").iterdir()) == ["mel0.bin", "mel1.bin", "notes.txt"]
    assert read_index(tmp_path).batch_size == 4


def test_a_failed_run_leaves_the_earlier_batches_whole(tmp_path: Path) -> None:
    out = tmp_path / "batches"
    write_batches(out, make_batches(4, 2), rows(data(4)), [MEL], {})
    (out / "notes.txt").write_text("mine")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def failing(items):
        if items[0] == 2:
            raise RuntimeError("disk full")
        return rows(data(4))(items)

    with pytest.raises(RuntimeError, match="disk full"):
        write_batches(out, make_batches(4, 2), failing, [MEL], {})
    # nothing under a final name changed: the index still describes the earlier, complete set
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert len(read_index(out).batches) == 2
    assert staging_leftovers(out) == []


def test_a_rerun_replaces_the_batches_and_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "batches"
    write_batches(out, make_batches(5, 1), rows(data(5)), [MEL], {})
    (out / "notes.txt").write_text("mine")
    write_batches(out, make_batches(5, 4), rows(data(5)), [MEL], {})
    assert sorted(p.name for p in (out / "mel").iterdir()) == ["mel0.bin", "mel1.bin"]
    assert (out / "notes.txt").read_text() == "mine"


def test_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("x")
    with pytest.raises(UsageError, match="no index.json, so it is not a graphkit result folder"):
        write_batches(tmp_path, make_batches(4, 2), rows(data(4)), [MEL], {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_write_errors(tmp_path: Path) -> None:
    b = make_batches(3, 2)
    with pytest.raises(DataError, match=r"rows have shape \(2, 3, 4\), expected \(2, 3, 5\)"):
        write_batches(tmp_path, b, lambda items: {"mel": np.zeros((len(items), 3, 4), np.float32)}, [MEL], {})
    with pytest.raises(DataError, match="no rows for input 'mel'"):
        write_batches(tmp_path, b, lambda items: {}, [MEL], {})
    with pytest.raises(DataError, match="complex128, cannot store as float32"):
        write_batches(tmp_path, b, lambda items: {"mel": np.zeros((len(items), 3, 5), complex)}, [MEL], {})
    with pytest.raises(DataError, match="meta is not JSON"):
        write_batches(tmp_path, b, rows(data(3)), [MEL], {"when": object()})
    with pytest.raises(DataError, match="cannot name a folder"):
        write_batches(tmp_path, b, rows(data(3)), [InputSpec("a/b", ("B", 3, 5))], {})
    with pytest.raises(DataError, match="no batches"):
        write_batches(tmp_path, [], rows(data(3)), [MEL], {})


def test_read_index_validates(tmp_path: Path) -> None:
    write_batches(tmp_path, make_batches(3, 2), rows(data(3)), [MEL], {"k": 1})
    path = tmp_path / "index.json"
    good = json.loads(path.read_text())

    def broken(change) -> None:
        d = json.loads(json.dumps(good))
        change(d)
        path.write_text(json.dumps(d))

    path.write_text("{not json")
    with pytest.raises(DataError, match="not readable JSON"):
        read_index(tmp_path)
    broken(lambda d: d.update(format="other"))
    with pytest.raises(DataError, match="not a graphkit batch index"):
        read_index(tmp_path)
    broken(lambda d: d.pop("batch_size"))
    with pytest.raises(DataError, match="malformed index.*batch_size"):
        read_index(tmp_path)
    broken(lambda d: d["batches"][1].update(valid=3))
    with pytest.raises(DataError, match="malformed index.*batch 1"):
        read_index(tmp_path)
    broken(lambda d: d["batches"][0].update(key="x0"))
    with pytest.raises(DataError, match="malformed index.*key 'x0'"):
        read_index(tmp_path)
    broken(lambda d: d["inputs"][0].update(shape=[4, 3, 5]))
    with pytest.raises(DataError, match="malformed index.*does not match batch 2"):
        read_index(tmp_path)
    path.write_text(json.dumps(good))
    assert read_index(tmp_path).meta == {"k": 1}
    (tmp_path / "mel" / "mel1.bin").write_bytes(b"\x00" * 8)
    with pytest.raises(DataError, match=r"mel1\.bin: 8 bytes, expected 120"):
        read_index(tmp_path)
    (tmp_path / "mel" / "mel1.bin").unlink()
    with pytest.raises(DataError, match=r"mel1\.bin: missing"):
        read_index(tmp_path)
