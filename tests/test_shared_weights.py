"""The per-batch models of an apply share their weights (ONNX external data under weights/).

Each large float initializer is written once, to weights/<sha256>.bin, and every model refers to
it; apply --self-contained writes whole models as before. Every consumer of an emitted model
(runners, compare, inspect, lint, the manifest checks of eval and bench) reads the shared form.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
from onnx import numpy_helper
from test_apply import write_recipe

from graphkit import testing
from graphkit.cli import main
from graphkit.errors import UsageError
from graphkit.ir.memory import run_bytes
from graphkit.ir.weights import MIN_BYTES, SharedWeights, external_locations
from graphkit.pipeline.verify import verify_listed, verify_outputs
from graphkit.recipe import load_recipe
from graphkit.runners.select import RecipeRunners, RunnerChoice

CHANNELS = 32  # w1 (32,32,3) and w2 (32,32,1) reach MIN_BYTES; biases and BN vectors do not


def apply(tmp_path: Path, *extra: str, seed: int = 0) -> Path:
    model = tiny.conv1d_chain(channels=CHANNELS, seed=seed)
    recipe = write_recipe(tmp_path, extra={"inputs": {"x": {"shape": ["B", CHANNELS, 16]}}}, model=model)
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out), "--no-emulate", *extra]) == 0
    return out


def large_floats(model: onnx.ModelProto) -> dict[str, bytes]:
    return {
        t.name: t.raw_data
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and len(t.raw_data) >= MIN_BYTES
    }


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return apply(tmp_path_factory.mktemp("shared"))


def test_every_large_weight_is_written_once_and_shared_by_every_batch(shared):
    files = sorted(p.relative_to(shared).as_posix() for p in (shared / "weights").iterdir())
    assert len(files) == 2  # the two conv weights, once for both batch sizes
    for name in ("tiny_bs1.onnx", "tiny_bs3.onnx"):
        skeleton = onnx.load(str(shared / name), load_external_data=False)
        assert sorted(external_locations(skeleton)) == files
        assert all(  # what stays inline: the small tensors, and every integer one
            len(t.raw_data) < MIN_BYTES or t.data_type != onnx.TensorProto.FLOAT
            for t in skeleton.graph.initializer
            if t.data_location != onnx.TensorProto.EXTERNAL
        )
        for t in skeleton.graph.initializer:  # no offset: ATC's older parsers scale it by 4096
            assert "offset" not in {e.key for e in t.external_data}
    for rel in files:  # content-addressed: the name is the digest of the bytes
        data = (shared / rel).read_bytes()
        assert Path(rel).stem == hashlib.sha256(data).hexdigest()[:32]


def test_the_manifest_lists_the_weights_with_their_digests(shared):
    manifest = json.loads((shared / "manifest.json").read_text())
    assert manifest["shared_weights"] == "weights"
    listed = sorted(k for k in manifest["files"] if k.startswith("weights/"))
    assert listed == sorted(p.relative_to(shared).as_posix() for p in (shared / "weights").iterdir())
    from graphkit.ir.io import sha256_file

    assert all(manifest["files"][rel] == sha256_file(shared / rel) for rel in listed)


def test_shared_models_compute_what_self_contained_ones_do(shared, tmp_path):
    whole = apply(tmp_path, "--self-contained")
    assert not (whole / "weights").exists()
    assert json.loads((whole / "manifest.json").read_text())["shared_weights"] is None
    for name in ("tiny_bs1.onnx", "tiny_bs3.onnx"):
        a, b = onnx.load(str(shared / name)), onnx.load(str(whole / name))  # onnx reads weights/
        assert large_floats(a) == large_floats(b)
        assert (shared / name).stat().st_size * 4 < (whole / name).stat().st_size
        batch = b.graph.input[0].type.tensor_type.shape.dim[0].dim_value
        x = np.random.default_rng(1).standard_normal((batch, CHANNELS, 16)).astype(np.float32)
        for got, want in zip(testing.run(a, {"x": x}), testing.run(b, {"x": x})):
            np.testing.assert_array_equal(got, want)


def test_the_graphkit_runner_opens_a_shared_model_from_its_folder(shared, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # onnxruntime resolves weights/ from the model's folder, not the cwd
    recipe = load_recipe(shared.parent / "tiny.yaml")
    runner = RecipeRunners(recipe, models_dir=shared).open(RunnerChoice("graphkit"), 3, label="graphkit")
    x = np.random.default_rng(2).standard_normal((3, CHANNELS, 16)).astype(np.float32)
    want = testing.run(onnx.load(str(shared / "tiny_bs3.onnx")), {"x": x})
    got = runner.infer({"x": x}, key="x0")
    np.testing.assert_allclose(got["y"], want[0], atol=1e-6)


def test_inspect_lint_and_compare_take_one_shared_model(shared, capsys):
    model = str(shared / "tiny_bs1.onnx")
    assert main(["inspect", model]) == 0
    assert main(["lint", model]) == 0
    assert main(["compare", model, model, "-o", str(shared.parent / "cmp")]) == 0
    assert "error" not in capsys.readouterr().err


def test_a_changed_or_missing_weights_file_is_refused(tmp_path):
    out = apply(tmp_path)
    recipe = load_recipe(tmp_path / "tiny.yaml")
    model = out / "tiny_bs1.onnx"
    verify_outputs(out, recipe, files=[model])  # as written: accepted
    weight = sorted((out / "weights").iterdir())[0]
    data = bytearray(weight.read_bytes())
    data[0] ^= 1
    weight.write_bytes(bytes(data))
    with pytest.raises(UsageError, match=r"weights/.*changed since graphkit apply wrote it"):
        verify_outputs(out, recipe, files=[model])  # eval and bench
    with pytest.raises(UsageError, match="changed since"):
        verify_listed(model)  # compare
    weight.unlink()
    with pytest.raises(UsageError, match="missing; the models of .* read their weights from it"):
        verify_outputs(out, recipe, files=[model])


def test_a_rerun_replaces_the_weights_files_it_no_longer_writes(tmp_path):
    out = apply(tmp_path, seed=0)
    before = {p.name for p in (out / "weights").iterdir()}
    (out / "notes.txt").write_text("mine")
    apply(tmp_path, seed=1)  # other weights: other names
    after = {p.name for p in (out / "weights").iterdir()}
    assert len(after) == 2 and not before & after
    apply(tmp_path, "--self-contained", seed=1)
    assert not (out / "weights").exists() and (out / "notes.txt").read_text() == "mine"


def test_externalise_leaves_the_model_alone_and_writes_a_shared_tensor_once(tmp_path):
    model = tiny.conv1d_chain(channels=CHANNELS)
    before = model.SerializeToString()
    store = SharedWeights(tmp_path)
    first, second = store.externalise(model), store.externalise(model)
    assert model.SerializeToString() == before
    assert first == second and len(store.sizes) == 2
    assert store.total_bytes == sum(len(v) for v in large_floats(model).values())


def test_the_memory_estimate_counts_external_weights_by_their_dims(shared):
    skeleton = onnx.load(str(shared / "tiny_bs3.onnx"), load_external_data=False)
    loaded = onnx.load(str(shared / "tiny_bs3.onnx"))
    assert run_bytes(skeleton, 3) == pytest.approx(run_bytes(loaded, 3), rel=0.01)


def test_weights_of_another_dtype_or_in_a_constant_stay_inline(tmp_path):
    ints = numpy_helper.from_array(np.arange(4096, dtype=np.int64), "idx")
    model = tiny.conv1d_chain(channels=CHANNELS)
    model.graph.initializer.append(ints)
    out = SharedWeights(tmp_path).externalise(model)
    kept = {t.name: t for t in out.graph.initializer}
    assert kept["idx"].data_location != onnx.TensorProto.EXTERNAL and kept["idx"].raw_data == ints.raw_data
