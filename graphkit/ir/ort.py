"""The one place graphkit opens onnxruntime sessions: parity, compare, the sweep and the runner.

Every session runs under the same settings, so a reference and a candidate are always computed
alike. onnxruntime's graph optimisations preserve ONNX semantics and make the checks about 10 %
faster on convolution-heavy models. There is no memory arena: parity runs each session a few
times on large batches, where the arena's over-allocation cost memory (AASIST-L at batch 16:
3.1 GB instead of 4.1 GB; at batch 64 it exhausts a 24 GB machine) and time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit._util import first_line

Feed = dict[str, np.ndarray]
CPU = "CPUExecutionProvider"


class OrtFailure(Exception):
    """onnxruntime could not load or run a model (the message is its reason, one line)."""


def session(
    model: onnx.ModelProto | bytes | Path,
    *,
    threads: int | None = None,
    providers: Sequence[str] = (CPU,),
) -> Any:
    """An onnxruntime session on an in-memory model, or on a model file (``Path``: onnxruntime
    reads the external data it names from the file's folder; a model in memory cannot name
    any). ``threads``: intra- and inter-op threads; None: onnxruntime's default. Raises
    whatever onnxruntime raises."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # its optimizer's notes are not the user's business
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = False
    if threads is not None:
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    if isinstance(model, Path):
        data: bytes | str = str(model)
    else:
        data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=list(providers))


def run_model(
    model: onnx.ModelProto | bytes,
    feeds: Sequence[Feed],
    outputs: Sequence[str],
    *,
    names: Mapping[str, str] | None = None,
) -> list[Feed]:
    """Run every feed through the model; returns one {output: array} per feed. ``names`` maps
    feed and output names to the model's (after a rename); feeds for inputs the model does not
    have (bound to constants) are left out. Results are keyed by the names asked for."""
    names = dict(names or {})
    try:
        sess = session(model)
        have = {i.name for i in sess.get_inputs()}
        asked = [names.get(o, o) for o in outputs]
        results = []
        for feed in feeds:
            given = {names.get(k, k): v for k, v in feed.items()}
            values = run_interruptible(sess, asked, {k: v for k, v in given.items() if k in have})
            results.append(dict(zip(outputs, values)))
    except MemoryError:
        raise
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise OrtFailure(first_line(exc)) from exc
    return results


def run_interruptible(sess: Any, outputs: Sequence[str] | None, feed: Mapping[str, np.ndarray]) -> list[Any]:
    """``sess.run(outputs, feed)``, stopped by Ctrl-C within a second. onnxruntime holds the
    thread that calls it for a whole run (AASIST-L at batch 64: ~70 s on two cores), and Python
    runs a signal handler only between bytecodes; so in the main thread the run goes on in a
    worker while the main thread waits, and an interrupt sets ``RunOptions.terminate``, which
    onnxruntime checks between nodes (it stops in ~0.3 s; the worker is joined before the
    interrupt goes on, so no run outlives the session at exit). Costs ~0.1 ms a run."""
    if threading.current_thread() is not threading.main_thread():
        return sess.run(outputs, feed)
    import onnxruntime as ort

    options = ort.RunOptions()
    done: Future[list[Any]] = Future()

    def work() -> None:
        try:
            done.set_result(sess.run(outputs, feed, options))
        except BaseException as exc:  # raised in the caller's thread by done.result()
            done.set_exception(exc)

    worker = threading.Thread(target=work, name="onnxruntime-run", daemon=True)
    worker.start()
    try:
        return done.result()
    except KeyboardInterrupt:
        options.terminate = True
        worker.join(timeout=10)
        raise


def ort_message(exc: BaseException) -> str:
    """onnxruntime's first line without the C++ source location and signature it puts before
    the reason ("/onnxruntime_src/x.cc:256 onnxruntime::Model::Model(...) Unsupported ...")."""
    text = first_line(exc)
    at = text.find("/onnxruntime_src/")
    if at < 0:
        return text
    open_ = text.find("(", at)
    depth, end = 0, -1
    for i in range(max(open_, at), len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if open_ >= 0 and depth == 0:
            end = i + 1
            break
    if end < 0:
        return text
    rest = text[end:].lstrip()
    if rest.startswith("[with "):  # a template's arguments
        rest = rest[rest.find("]") + 1 :].lstrip()
    return text[:at] + rest
