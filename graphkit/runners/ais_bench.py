"""ais_bench runner: an ``.om`` model on an Ascend NPU through ``ais_bench.infer.interface.InferSession``.

Needs an Ascend host with CANN and the ``aclruntime`` + ``ais_bench`` wheels; everywhere else
opening it raises :class:`RunnerUnavailable` with what to install. Nothing is simulated: without
an NPU this runner does not run.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from graphkit.errors import ModelError, RunnerError, RunnerUnavailable, check_interrupted
from graphkit.runners.base import Runner

log = logging.getLogger("graphkit")

INSTALL_HINT = (
    "install the aclruntime and ais_bench wheels "
    "(https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench) on an Ascend host "
    "with CANN, and source CANN's set_env.sh (e.g. . /usr/local/Ascend/ascend-toolkit/set_env.sh)"
)
MODES = ("static", "dymbatch")


def resolve_om(path: str | Path) -> Path:
    """The om file for ``path``: the path itself, else the one file ``<path>*.om``.

    ATC treats ``--output`` as a prefix and recent builds append a host-arch suffix
    (``foo`` → ``foo_linux_aarch64.om``), so a runner globs instead of assuming ``<prefix>.om``.
    A given ``foo.om`` that does not exist is looked up as prefix ``foo``.
    """
    path = Path(path)
    if path.is_file():
        return path
    prefix = str(path)[: -len(".om")] if path.suffix == ".om" else str(path)
    matches = sorted(Path(p) for p in glob.glob(glob.escape(prefix) + "*.om") if Path(p).is_file())
    if not matches:
        raise ModelError(f"{path}: no om model found (looked for {prefix}*.om)")
    if len(matches) > 1:
        raise ModelError(
            f"{path}: {len(matches)} om models match {prefix}*.om ({', '.join(m.name for m in matches)}); "
            "give the exact file"
        )
    return matches[0]


def _import_interface() -> Any:
    try:
        from ais_bench.infer import interface
    except ImportError as exc:  # also aclruntime's own ImportError when CANN's libraries are absent
        check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
        raise RunnerUnavailable(
            f"ais_bench runner: cannot import ais_bench ({exc}): {INSTALL_HINT}"
        ) from None
    return interface


class AisBenchRunner(Runner):
    """Run an om model with ais_bench's ``InferSession(device_id, om_path)``.

    ``mode``: ``"static"`` (the om's one batch, read from its first input) or ``"dymbatch"`` (an
    om built with ``--dynamic_batch_size``: ``batch`` may name the gear used, else None). Outputs
    come back as the NPU returns them, in the om's output dtypes: ais_bench builds each array
    from the output tensor (``np.array(tensor)``), whose dtype is the om's output description,
    so an om built with force_fp16 and no ``--output_type`` returns float16. A float16 output is
    widened to float32 (exact), as the files runner does, so that metrics never accumulate in
    fp16; it is reported once in the log and named in ``fp16_outputs``.
    """

    kind: ClassVar[str] = "ais_bench"

    def __init__(
        self,
        om: str | Path,
        *,
        device_id: int = 0,
        mode: str = "static",
        batch: int | None = None,
        output_names: Sequence[str] | None = None,
        label: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise RunnerError(f"ais_bench: mode '{mode}' is not one of {', '.join(MODES)}")
        interface = _import_interface()
        self.om_path = resolve_om(om)
        self.mode = mode
        try:
            self._session = interface.InferSession(device_id, str(self.om_path))
        except Exception as exc:  # aclruntime raises RuntimeError / its own types
            raise RunnerError(f"ais_bench cannot load {self.om_path} on device {device_id}: {exc}") from None
        self.input_names = tuple(t.name for t in self._session.get_inputs())
        names = tuple(t.name for t in self._session.get_outputs())
        if output_names is not None:
            if len(output_names) != len(names):
                raise RunnerError(
                    f"{self.om_path.name}: the om has {len(names)} outputs, "
                    f"{len(output_names)} names were given"
                )
            names = tuple(output_names)
        self.output_names = names
        if batch is None and mode == "static":
            shape = list(self._session.get_inputs()[0].shape)
            batch = int(shape[0]) if shape and int(shape[0]) > 0 else None
        self.batch = batch
        self.fp16_outputs: set[str] = set()
        self.label = label or self.om_path.stem

    def _infer(self, feeds: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
        arrays = [np.ascontiguousarray(feeds[n]) for n in self.input_names]
        try:
            values = self._session.infer(arrays, mode=self.mode)
        except Exception as exc:
            raise RunnerError(f"{self.label} [{key}]: ais_bench inference failed: {exc}") from None
        if len(values) != len(self.output_names):
            want = len(self.output_names)
            raise RunnerError(f"{self.label} [{key}]: {len(values)} outputs, expected {want}")
        out = {}
        for name, value in zip(self.output_names, values):
            arr = np.asarray(value)
            if arr.dtype == np.float16:
                if name not in self.fp16_outputs:
                    self.fp16_outputs.add(name)
                    log.warning(
                        "%s: output '%s' comes back as float16 (an om built with force_fp16 and no "
                        "--output_type FP32); widened to float32 for the metric",
                        self.label,
                        name,
                    )
                arr = arr.astype(np.float32)
            out[name] = arr
        return out

    def device_times_ms(self) -> list[float] | None:
        if self._session is None:
            return None
        # The shipped interface spells it sumary(); the docs say summary() (ascend-toolchain.md §4.2).
        summary = getattr(self._session, "summary", None) or self._session.sumary
        return [float(t) for t in summary().exec_time_list]

    def _release(self) -> None:
        session, self._session = getattr(self, "_session", None), None
        if session is not None and hasattr(session, "free_resource"):
            session.free_resource()
