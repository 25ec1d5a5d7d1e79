"""Time conv1d_to_conv2d on long Conv1d chains against onnxsim on the same model.

The model is a chain of N residual blocks, ``h' = Add(Relu(Conv1d(h)), h)`` (3 nodes per block,
C=4, k=3, pad 1, L=16, one constant weight and bias per conv), so 20,000 blocks are 60,000
nodes. Each side starts from the same ModelProto without value_info and ends with a ModelProto:

- graphkit: onnx shape inference (the pass needs ranks; onnxsim infers shapes internally too),
  gs.import_onnx, conv1d_to_conv2d, graph.cleanup().toposort(), gs.export_onnx;
- onnxsim: onnxsim.simplify(model, check_n=0), defaults otherwise.

    python benchmarks/bench_conv1d_chain.py --blocks 20000 40000 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxsim
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.proto import infer_shapes
from graphkit.passes._infra import Sites
from graphkit.passes.conv1d_to_conv2d import conv1d_to_conv2d

CHANNELS, KERNEL, LENGTH, OPSET = 4, 3, 16, 13


def chain_model(blocks: int, seed: int = 0) -> onnx.ModelProto:
    """N blocks of h -> Conv1d(k3, pad 1) -> Relu -> Add(., h); no value_info."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    h = "x"
    for i in range(blocks):
        w = (rng.standard_normal((CHANNELS, CHANNELS, KERNEL)) * 0.05).astype(np.float32)
        b = (rng.standard_normal(CHANNELS) * 0.05).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node(
                "Conv", [h, f"w{i}", f"b{i}"], [f"c{i}"], f"conv{i}", kernel_shape=[KERNEL], pads=[1, 1]
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"], f"relu{i}"),
            helper.make_node("Add", [f"r{i}", h], [f"h{i}"], f"add{i}"),
        ]
        h = f"h{i}"
    shape = [1, CHANNELS, LENGTH]
    graph = helper.make_graph(
        nodes,
        "conv1d_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(h, TensorProto.FLOAT, shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def run_graphkit(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, float]]:
    """The graphkit pipeline, with the time of each stage."""
    stages: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        stages[name] = now - t
        t = now

    typed = infer_shapes(model)
    lap("infer")
    graph = gs.import_onnx(typed)
    lap("import")
    sites = conv1d_to_conv2d(graph, sites=Sites())
    lap("pass")
    graph.cleanup().toposort()
    lap("cleanup+toposort")
    out = gs.export_onnx(graph)
    lap("export")
    stages["sites"] = sites
    return out, stages


def run_onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    out, ok = onnxsim.simplify(model, check_n=0)
    if not ok:
        raise RuntimeError("onnxsim.simplify reported failure")
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def measure(blocks: int, repeat: int) -> dict[str, Any]:
    model = chain_model(blocks)
    data = model.SerializeToString()
    gk_times, sim_times, stages = [], [], {}
    for _ in range(repeat):
        # each side gets its own copy of the same model
        (out, stages), gk = timed(lambda: run_graphkit(onnx.ModelProto.FromString(data)))
        sim_out, sim = timed(lambda: run_onnxsim(onnx.ModelProto.FromString(data)))
        gk_times.append(gk)
        sim_times.append(sim)
    # the pass did its job: every conv lifted, one Unsqueeze in, one Squeeze out
    ops = Counter(n.op_type for n in out.graph.node)
    kernels = [
        a.ints for n in out.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "kernel_shape"
    ]
    assert stages["sites"] == blocks and all(len(k) == 2 for k in kernels), "not every conv was lifted"
    assert ops["Unsqueeze"] == 1 and ops["Squeeze"] == 1, ops
    return {
        "blocks": blocks,
        "nodes": len(model.graph.node),
        "nodes_after": len(out.graph.node),
        "onnxsim_nodes_after": len(sim_out.graph.node),
        "graphkit_s": min(gk_times),
        "onnxsim_s": min(sim_times),
        "ratio": min(gk_times) / min(sim_times),
        "graphkit_stages_s": {k: v for k, v in stages.items() if k != "sites"},
        "runs": repeat,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[20000, 40000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the best is kept")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    rows = [measure(n, args.repeat) for n in args.blocks]
    print(
        f"{'blocks':>7} {'nodes':>7} {'graphkit s':>11} {'onnxsim s':>10} {'gk/sim':>7}  graphkit stages (s)"
    )
    for r in rows:
        st = " ".join(f"{k}={v:.2f}" for k, v in r["graphkit_stages_s"].items())
        print(
            f"{r['blocks']:>7} {r['nodes']:>7} {r['graphkit_s']:>11.2f} {r['onnxsim_s']:>10.2f} "
            f"{r['ratio']:>7.2f}  {st}"
        )
    growth = {}
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        scale = b["blocks"] / a["blocks"]
        growth = {
            "size_ratio": scale,
            "graphkit": b["graphkit_s"] / a["graphkit_s"],
            "onnxsim": b["onnxsim_s"] / a["onnxsim_s"],
        }
        print(
            f"growth {b['blocks']}/{a['blocks']} (x{scale:g} nodes): "
            f"graphkit x{growth['graphkit']:.2f}, onnxsim x{growth['onnxsim']:.2f}"
        )
    if args.json:
        env = {
            "python": platform.python_version(),
            "onnx": onnx.__version__,
            "onnx_graphsurgeon": gs.__version__,
            "onnxsim": getattr(onnxsim, "__version__", "?"),
            "machine": platform.machine(),
        }
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "growth": growth, "env": env}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
