"""Tiny models built by code for the tests (no golden .onnx files in the repo), and small
helpers to inspect a model. Running passes and comparing models: :mod:`graphkit.testing`."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphkit.passes import set_batch_size


def conv1d_chain(*, opset: int = 17, channels: int = 4, length: int = 16, seed: int = 0) -> onnx.ModelProto:
    """x (B,C,L) → Conv1d k3 → Relu → BN → Conv1d k1 → + x → ReduceMean(L) → y (B,C).

    The batch dim is symbolic ("B"); the ReduceMean output is a second graph output ``pooled``
    so that 3-D and 2-D outputs are both covered.
    """
    rng = np.random.default_rng(seed)
    c = channels
    inits = [
        numpy_helper.from_array(rng.standard_normal((c, c, 3)).astype(np.float32) * 0.3, "w1"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array((1 + 0.1 * rng.standard_normal(c)).astype(np.float32), "bn_s"),
        numpy_helper.from_array((0.1 * rng.standard_normal(c)).astype(np.float32), "bn_b"),
        numpy_helper.from_array((0.1 * rng.standard_normal(c)).astype(np.float32), "bn_m"),
        numpy_helper.from_array((1 + 0.1 * rng.random(c)).astype(np.float32), "bn_v"),
        numpy_helper.from_array(rng.standard_normal((c, c, 1)).astype(np.float32) * 0.3, "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1], kernel_shape=[3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("BatchNormalization", ["r1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"]),
        helper.make_node("Conv", ["n1", "w2"], ["c2"], kernel_shape=[1]),
        helper.make_node("Add", ["c2", "x"], ["y"]),
        helper.make_node("Identity", ["y"], ["y_id"]),
        helper.make_node("ReduceMean", ["y_id"], ["pooled"], axes=[2], keepdims=0)
        if opset < 18
        else helper.make_node("ReduceMean", ["y_id", "axes"], ["pooled"], keepdims=0),
    ]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", c, length])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", c, length]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", c]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def with_shape_plumbing(*, opset: int = 17) -> onnx.ModelProto:
    """x (B,4,6) → Reshape(x, Concat(Shape(x)[0], [24])) → Identity → y (B,24): the example of
    set_batch_size.

    The Reshape target depends on the batch at run time, as exporters write it.
    """
    return dataclasses.replace(set_batch_size.EXAMPLES[0], opset=opset).model()


def ops(model: onnx.ModelProto):
    """Op-type histogram of a model's graph."""
    from collections import Counter

    return Counter(n.op_type for n in model.graph.node)


def nodes(model: onnx.ModelProto, op: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == op]


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def inits_of(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def relu_mlp(*, layers: int = 10, width: int = 8, seed: int = 0) -> onnx.ModelProto:
    """x (B,width) → [MatMul → Add → Relu] × layers → y (B,width): ``layers`` Relu sites, named
    relu_0 … relu_{layers-1}, and every intermediate tensor a distinct name (h_i)."""
    rng = np.random.default_rng(seed)
    inits, nodes_ = [], []
    prev = "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w_{i}"),
            numpy_helper.from_array(np.full(width, 0.1, np.float32), f"b_{i}"),
        ]
        out = "y" if i == layers - 1 else f"h_{i}"
        nodes_ += [
            helper.make_node("MatMul", [prev, f"w_{i}"], [f"m_{i}"], name=f"matmul_{i}"),
            helper.make_node("Add", [f"m_{i}", f"b_{i}"], [f"a_{i}"], name=f"add_{i}"),
            helper.make_node("Relu", [f"a_{i}"], [out], name=f"relu_{i}"),
        ]
        prev = out
    graph = helper.make_graph(
        nodes_,
        "relu_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
