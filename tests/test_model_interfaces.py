"""Models that are not shaped like the two seeds: a batch on another axis or on none, state
inputs, scalars, outputs that are not per row, TF-style names, unknown frame counts.

Each case is a small synthetic model run through ``graphkit apply`` (the CLI); the emitted
models are then checked against the original on onnxruntime by this file's own code, not by
graphkit's parity.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from graphkit import testing
from graphkit.cli import main
from graphkit.ir.build import model_from_text
from graphkit.ir.ort import session
from graphkit.pipeline.reference import WARMUP, Feeds
from graphkit.recipe import load_recipe

W = testing.weights


def apply(tmp: Path, model: onnx.ModelProto, recipe: dict, *args: str) -> tuple[int, Path]:
    onnx.save(model, tmp / "m.onnx")
    data = {"name": "m", "source": {"onnx": "m.onnx"}, "atc": {"soc_version": "Ascend310P3"}, **recipe}
    (tmp / "r.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp / "out"
    return main(["-q", "apply", str(tmp / "r.yaml"), "-o", str(out), *args]), out


def emitted(out: Path, batch: int) -> onnx.ModelProto:
    model = onnx.load(out / f"m_bs{batch}.onnx")
    onnx.checker.check_model(model, full_check=True)
    return model


def declared(vis) -> dict[str, list[int]]:
    dims = {}
    for vi in vis:
        d = vi.type.tensor_type.shape.dim
        assert all(x.HasField("dim_value") and x.dim_value > 0 for x in d), (vi.name, d)
        dims[vi.name] = [x.dim_value for x in d]
    return dims


def same_outputs(original: onnx.ModelProto, model: onnx.ModelProto, feed: dict, names: dict | None = None):
    """The emitted model on ``feed`` (renamed, bound inputs dropped) gives the original's
    outputs, and each output has the shape its declaration says."""
    names = names or {}
    ref_sess, sess = session(original), session(model)
    ref = dict(zip([o.name for o in ref_sess.get_outputs()], ref_sess.run(None, feed)))
    have = {i.name for i in sess.get_inputs()}
    got_feed = {names.get(k, k): v for k, v in feed.items() if names.get(k, k) in have}
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, got_feed)))
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in model.graph.output}
    for name, value in ref.items():
        value2 = got[names.get(name, name)]
        assert list(np.shape(value2)) == shapes[names.get(name, name)]
        np.testing.assert_allclose(value2, value, atol=1e-5, rtol=1e-5)


STATEFUL = """g (float[B,8] x, float[2,B,4] state) => (float[B,4] y, float[2,B,4] state_out) {
    xs = MatMul(x, wx)
    h = Tanh(state)
    hsum = ReduceSum<axes = [0], keepdims = 0>(h)
    pre = Add(xs, hsum)
    y = Tanh(pre)
    y2 = Unsqueeze<axes = [0]>(y)
    both = Concat<axis = 0>(y2, y2)
    mixed = Add(both, state)
    state_out = Mul(mixed, half)
}"""


def stateful() -> onnx.ModelProto:
    return testing.build(STATEFUL, opset=11, wx=W(8, 4), half=np.array(0.5, np.float32))


def test_a_state_with_its_batch_on_axis_1_is_set_there_and_warmed_up(tmp_path):
    recipe = {
        "inputs": {"x": {"shape": ["B", 8]}, "state": {"shape": [2, "B", 4], "feedback": "state_out"}},
        "batch_sizes": [1, 3],
        "passes": ["set_batch_size"],
    }
    code, out = apply(tmp_path, stateful(), recipe)
    assert code == 0
    for b in (1, 3):
        model = emitted(out, b)
        assert declared(model.graph.input) == {"x": [b, 8], "state": [2, b, 4]}
        assert declared(model.graph.output) == {"y": [b, 4], "state_out": [2, b, 4]}
        rng = np.random.default_rng(b)
        feed = {"x": rng.standard_normal((b, 8)).astype(np.float32)}
        feed["state"] = rng.uniform(-1, 1, (2, b, 4)).astype(np.float32)
        same_outputs(stateful(), model, feed)
    line = (out / "atc.sh").read_text().splitlines()[-1]
    assert '--input_shape="x:3,8;state:2,3,4"' in line


def test_feedback_warms_the_state_with_the_models_own_output(tmp_path):
    onnx.save(stateful(), tmp_path / "m.onnx")
    data = {
        "name": "m",
        "source": {"onnx": "m.onnx"},
        "inputs": {"x": {"shape": ["B", 8]}, "state": {"shape": [2, "B", 4], "feedback": "state_out"}},
        "passes": [],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    recipe = load_recipe(tmp_path / "r.yaml")
    feeds = Feeds(recipe, stateful(), ["y", "state_out"])
    feed = feeds.stage1_feeds[0]
    sess, state = session(stateful()), np.zeros((2, 2, 4), np.float32)
    for _ in range(WARMUP):
        state = sess.run(["state_out"], {"x": feed["x"], "state": state})[0]
    np.testing.assert_array_equal(feed["state"], state)
    assert np.abs(state).max() > 0.1  # not the zero state


BATCH1 = """g (float[B,3,6] x, float[3,1,6] h0) => (float[B] score) {
    flat = Reshape(x, shape)
    hs = Reshape(h0, hshape)
    s = Add(flat, hs)
    r = ReduceMean<axes = [1, 2], keepdims = 0>(s)
    score = Squeeze(r)
}"""


def batch1() -> onnx.ModelProto:
    """As exporters write it: the output declared [B], which the strict checker refuses."""
    shapes = {"shape": np.array([1, 3, 6], np.int64), "hshape": np.array([1, 3, 6], np.int64)}
    return model_from_text(BATCH1, inits=shapes, check=False)


def test_a_model_that_runs_only_at_batch_1_with_a_fixed_state_and_a_rank_0_output(tmp_path):
    """h0 [3, 1, 6] has no batch dim; the Reshape pins the batch to 1; the Squeeze makes the
    output rank 0 at batch 1 (its declaration says [B]): none of it is a parity failure, and
    the emitted model declares the shape it really gives."""
    recipe = {
        "inputs": {"x": {"shape": ["B", 3, 6]}, "h0": {"shape": [3, 1, 6]}},
        "batch_sizes": [1],
        "passes": ["simplify", "set_batch_size"],
    }
    code, out = apply(tmp_path, batch1(), recipe)
    assert code == 0
    model = emitted(out, 1)
    assert [len(vi.type.tensor_type.shape.dim) for vi in model.graph.output] == [0]
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((1, 3, 6)).astype(np.float32)}
    feed["h0"] = rng.standard_normal((3, 1, 6)).astype(np.float32)
    same_outputs(batch1(), model, feed)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["batches"][0]["parity"]["score"]["max_abs"] < 1e-6


POOLED = """g (float[B,4] x) => (float[4] mean, float[B,4] y) {
    y = Relu(x)
    mean = ReduceMean<axes = [0], keepdims = 0>(y)
}"""


def test_an_output_that_is_not_per_row_is_checked_on_the_exact_feed(tmp_path):
    """A mean over the batch cannot be sliced from a reference of other rows: each batch's
    reference is computed on the very feed the candidate gets."""
    model = testing.build(POOLED)
    code, out = apply(
        tmp_path, model, {"inputs": {"x": {"shape": ["B", 4]}}, "batch_sizes": [1, 4], "passes": []}
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(b["parity"]["mean"]["max_abs"] == 0 for b in manifest["batches"])
    onnx.save(model, tmp_path / "m.onnx")
    feeds = Feeds(load_recipe(tmp_path / "r.yaml"), model, ["mean", "y"])
    assert feeds.axes == {"mean": None, "y": 0} and not feeds.row_mode


SCALAR = """g (float[1,N] audio, float fmin, int64 sr) => (float[1,N] y) {
    lo = Mul(audio, fmin)
    k = Constant<value = int64 {16000}>()
    is16 = Equal(sr, k)
    y = If(is16) <
        then_branch = t () => (float[1,N] a) { a = Relu(lo) },
        else_branch = e () => (float[1,N] b) { b = Neg(lo) }
    >
}"""


def test_rank_0_inputs_a_bound_sample_rate_and_a_pinned_length(tmp_path):
    """``shape: []`` inputs; ``sr`` bound by bind_inputs (its If folds away, it leaves the ATC
    line); the recipe's static length N = 32 is written into the graph."""
    model = testing.build(SCALAR)
    recipe = {
        "inputs": {
            "audio": {"shape": [1, 32]},
            "fmin": {"shape": [], "value": 50.0},
            "sr": {"shape": [], "dtype": "int64", "value": 16000},
        },
        "passes": [{"pass": "bind_inputs", "with": {"values": {"sr": 16000}}}],
    }
    code, out = apply(tmp_path, model, recipe)
    assert code == 0
    final = emitted(out, 1)
    assert [n.op_type for n in final.graph.node] == ["Mul", "Relu"]
    assert declared(final.graph.input) == {"audio": [1, 32], "fmin": []}
    line = (out / "atc.sh").read_text().splitlines()[-1]
    assert '--input_shape="audio:1,32;fmin:"' in line
    feed = {"audio": np.linspace(-1, 1, 32, dtype=np.float32)[None], "fmin": np.array(50.0, np.float32)}
    same_outputs(model, final, feed | {"sr": np.array(16000, np.int64)})


def test_a_bound_value_that_differs_from_the_inputs_value_is_refused(tmp_path):
    recipe = {
        "inputs": {
            "audio": {"shape": [1, 32]},
            "fmin": {"shape": []},
            "sr": {"shape": [], "dtype": "int64", "value": 8000},
        },
        "passes": [{"pass": "bind_inputs", "with": {"values": {"sr": 16000}}}],
    }
    assert apply(tmp_path, testing.build(SCALAR), recipe)[0] == 2
    recipe["inputs"]["sr"].pop("value")
    recipe["passes"][0]["with"]["values"] = {"sr_rate": 16000}
    assert apply(tmp_path, testing.build(SCALAR), recipe)[0] == 2


TF_NAMES = """g (float[N,6,1] "serving_default_input_2:0") => (float[N,6] "StatefulPartitionedCall:0") {
    "StatefulPartitionedCall:0" = Squeeze<axes = [2]>("serving_default_input_2:0")
}"""


def test_tf_names_are_renamed_for_atc_and_refused_with_advice_otherwise(tmp_path, capsys):
    model = testing.build(TF_NAMES, opset=11)
    recipe = {
        "inputs": {"serving_default_input_2:0": {"shape": ["B", 6, 1]}},
        "batch_sizes": [2],
        "passes": [],
    }
    assert apply(tmp_path, model, recipe)[0] == 2
    assert "rename_io" in capsys.readouterr().err
    rename = {
        "inputs": {"serving_default_input_2:0": "audio"},
        "outputs": {"StatefulPartitionedCall:0": "notes"},
    }
    recipe["passes"] = [{"pass": "rename_io", "with": rename}]
    code, out = apply(tmp_path, model, recipe)
    assert code == 0
    final = emitted(out, 2)
    assert declared(final.graph.input) == {"audio": [2, 6, 1]}
    assert declared(final.graph.output) == {"notes": [2, 6]}
    assert '--input_shape="audio:2,6,1"' in (out / "atc.sh").read_text()
    feed = {"serving_default_input_2:0": np.arange(12, dtype=np.float32).reshape(2, 6, 1)}
    same_outputs(model, final, feed, {**rename["inputs"], **rename["outputs"]})
    # bench feeds the source's names: the renamed model is fed and read under its new ones
    bench = ["-q", "bench", str(tmp_path / "r.yaml"), "--models", str(out), "--loops", "1", "--warmup", "0"]
    assert main(bench) == 0


UNKNOWN_LENGTH = """g (float[B,4,T] x) => (float[B,4,T] y) {
    c = Conv<kernel_shape = [3], pads = [1, 1]>(x, w)
    y = Relu(c)
}"""


def test_static_dims_from_the_recipe_reach_the_passes_and_lint(tmp_path, caplog):
    """T is unknown in the model; the recipe fixes it to 16, so the Conv is lifted to 2-D and
    lint sees no dynamic dim that atc.sh would fix anyway."""
    model = testing.build(UNKNOWN_LENGTH, w=W(4, 4, 3))
    recipe = {"inputs": {"x": {"shape": ["B", 4, 16]}}, "batch_sizes": [2], "passes": ["conv1d_to_conv2d"]}
    caplog.set_level("WARNING", logger="graphkit")
    code, out = apply(tmp_path, model, recipe)
    assert code == 0
    final = emitted(out, 2)
    assert [n.op_type for n in final.graph.node].count("Conv") == 1
    conv = next(n for n in final.graph.node if n.op_type == "Conv")
    assert [a.ints for a in conv.attribute if a.name == "kernel_shape"][0] == [1, 3]
    assert not [r for r in caplog.records if "dynamic" in r.getMessage()]
    x = np.random.default_rng(0).standard_normal((2, 4, 16)).astype(np.float32)
    same_outputs(model, final, {"x": x})


@pytest.mark.parametrize("value", [{"range": [0, 1], "value": 1}, {"shape": "x"}])
def test_input_value_keys_are_checked(tmp_path, value):
    inputs = {"x": {"shape": ["B", 4], **value}}
    code, _ = apply(tmp_path, testing.build(POOLED), {"inputs": inputs, "passes": []})
    assert code == 2


def test_a_state_can_be_given_from_a_file_with_its_rows_along_the_batch_axis(tmp_path):
    rows = np.random.default_rng(5).uniform(-1, 1, (2, 3, 4)).astype(np.float32)  # 3 rows on axis 1
    np.save(tmp_path / "state.npy", rows)
    recipe = {
        "inputs": {"x": {"shape": ["B", 8]}, "state": {"shape": [2, "B", 4], "npy": "state.npy"}},
        "batch_sizes": [4],
        "passes": [],
    }
    onnx.save(stateful(), tmp_path / "m.onnx")
    data = {"name": "m", "source": {"onnx": "m.onnx"}, **recipe}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    feed = Feeds(load_recipe(tmp_path / "r.yaml"), stateful(), ["y", "state_out"]).for_batch(4).feeds[0]
    np.testing.assert_array_equal(feed["state"], rows[:, [0, 1, 2, 0]])
    np.save(tmp_path / "state.npy", rows[:, :, :3])
    code, _ = apply(tmp_path, stateful(), recipe)
    assert code == 2
