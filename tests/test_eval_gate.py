"""graphkit eval's gate: --max-delta METRIC=X, --max-score-delta, --min-cosine; exit 1 on a breach.

The gate's arithmetic on hand-made results, its usage errors, and eval end to end on ECAPA's
batch-1 model with an NPU output folder (files runner) that is, or is not, off.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graphkit.cli import main
from graphkit.errors import UsageError
from graphkit.eval.gate import Gate, gate_from, parse_max_delta

ROOT = Path(__file__).resolve().parent.parent
ECAPA = str(ROOT / "recipes" / "ecapa.yaml")
AASIST = str(ROOT / "recipes" / "aasist.yaml")


@dataclass
class Result:
    runner: str
    batch: int | None
    metrics: dict[str, float]
    agreement: dict[str, float] = field(default_factory=dict)


def results(eer: float, score: float, cosine: float) -> list[Result]:
    ref = Result("torch", None, {"eer_percent": 10.0, "centroid_roc_auc": 0.9})
    other = Result("graphkit bs4", 4, {"eer_percent": eer, "centroid_roc_auc": 0.9})
    other.agreement = {"max_abs_score_delta": score, "min_cosine": cosine}
    return [ref, other]


def test_each_limit_breaks_alone_and_holds_at_its_value():
    gate = Gate({"eer_percent": 0.5}, max_score_delta=1e-3, min_cosine=0.999)
    assert gate.breaches(results(10.5, 1e-3, 0.999)) == []  # at the limits: passes
    [b] = gate.breaches(results(10.6, 0.0, 1.0))
    assert (b.runner, b.batch, b.metric, b.limit) == ("graphkit bs4", 4, "eer_percent", 0.5)
    assert b.value == pytest.approx(0.6)
    line = b.line()
    assert line.startswith("eval gate breached: runner 'graphkit bs4', batch 4: |Δ eer_percent| 0.6 > 0.5")
    assert "(--max-delta eer_percent=0.5) against torch" in line
    [b] = gate.breaches(results(10.0, 2e-3, 1.0))
    assert b.metric == "max_abs_score_delta" and "max |Δ score| 0.002 > 0.001" in b.line()
    [b] = gate.breaches(results(10.0, 0.0, 0.99))
    assert b.metric == "min_cosine" and "min cosine 0.9900000 < 0.999 (--min-cosine)" in b.line()
    assert len(gate.breaches(results(9.0, 1.0, 0.5))) == 3
    assert Gate().breaches(results(99.0, 9.0, -1.0)) == []  # no limit given: an open gate


def test_nan_breaks_every_limit():
    gate = Gate({"eer_percent": 100.0}, max_score_delta=1e9, min_cosine=-1.0)
    found = gate.breaches(results(math.nan, math.nan, math.nan))
    assert [b.metric for b in found] == ["eer_percent", "max_abs_score_delta", "min_cosine"]
    assert found[0].as_dict()["value"] == "nan"  # JSON has no NaN


@pytest.mark.parametrize(
    "text, needle",
    [
        ("eer_percnt=0.1", "unknown metric 'eer_percnt'; did you mean 'eer_percent'?"),
        ("min_dcf_0.1=0.1", "unknown metric 'min_dcf_0.1'; did you mean 'min_dcf_0.0"),
        ("accuracy=1", "unknown metric 'accuracy' (metrics: centroid_roc_auc, eer_percent,"),
        ("eer_percent", "is not METRIC=X"),
        ("eer_percent=abc", "--max-delta eer_percent: 'abc' is not a number"),
        ("eer_percent=-1", "the limit must be a finite number >= 0, got -1"),
        ("eer_percent=nan", "the limit must be a finite number >= 0, got nan"),
    ],
)
def test_bad_max_delta_values(text, needle):
    with pytest.raises(UsageError, match="--max-delta") as info:
        parse_max_delta(text)
    assert needle in str(info.value)


def test_a_metric_given_twice_is_refused():
    with pytest.raises(UsageError, match="--max-delta eer_percent is given twice"):
        gate_from([("eer_percent", 0.1), ("eer_percent", 0.2)], None, None)


def test_limits_eval_cannot_judge_are_refused_before_running():
    with pytest.raises(UsageError, match="--max-delta min_tdcf: not a metric of speaker_verification"):
        Gate({"min_tdcf": 0.1}).check_task("speaker_verification", asv_scores=False, results=2)
    with pytest.raises(UsageError, match="min t-DCF needs the ASV scores: give --asv-scores"):
        Gate({"min_tdcf": 0.1}).check_task("anti_spoofing", asv_scores=False, results=2)
    with pytest.raises(UsageError, match="--min-cosine: anti_spoofing gives one score per utterance"):
        Gate(min_cosine=0.9).check_task("anti_spoofing", asv_scores=False, results=2)
    with pytest.raises(UsageError, match="only one runs: give another --runner or batch size"):
        Gate(max_score_delta=0.1).check_task("anti_spoofing", asv_scores=False, results=1)
    with pytest.raises(UsageError, match="--max-delta trial_roc_auc: the dataset has no trial list"):
        Gate({"trial_roc_auc": 0.1}).check_trials(False)
    # must not fire: what the task computes
    Gate({"min_tdcf": 0.1, "roc_auc": 0.1}).check_task("anti_spoofing", asv_scores=True, results=2)
    Gate({"trial_roc_auc": 0.1}, min_cosine=0.9).check_task(
        "speaker_verification", asv_scores=False, results=2
    )
    Gate({"trial_roc_auc": 0.1}).check_trials(True)
    Gate().check_task("anti_spoofing", asv_scores=False, results=1)  # no gate: one runner is fine


def one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("graphkit: error: ")]
    assert len(errors) == 1 and "Traceback" not in "".join(lines), lines
    return errors[0]


@pytest.mark.parametrize(
    "recipe, flags, needle",
    [
        (ECAPA, ["--max-delta", "eer_prcent=1"], "did you mean 'eer_percent'?"),
        (ECAPA, ["--max-delta", "min_tdcf=1"], "not a metric of speaker_verification"),
        (AASIST, ["--min-cosine", "0.9"], "--min-cosine: anti_spoofing gives one score per utterance"),
        (ECAPA, ["--min-cosine", "2"], "--min-cosine must be in [-1, 1], got 2"),
        (ECAPA, ["--max-score-delta", "-1"], "--max-score-delta must be >= 0"),
        (ECAPA, ["--max-score-delta", "1", "--runner", "graphkit"], "only one runs"),
    ],
)
def test_gate_usage_errors_are_one_line_and_write_nothing(tmp_path, capsys, recipe, flags, needle):
    out = tmp_path / "o"
    args = ["eval", recipe, "--data", str(tmp_path), "--batch", "1", "-o", str(out), *flags]
    assert main(args) == 2
    assert needle in one_line_error(capsys)
    assert not out.exists()


# --- end to end: ECAPA bs1, graphkit against an NPU output folder ---------------------------------


def speakers(root: Path) -> Path:
    """Two speakers, two utterances each, told apart by pitch (2.5 s tones)."""
    t = np.arange(40000) / 16000
    for spk, freqs in (("a", (220, 247)), ("b", (523, 587))):
        (root / spk).mkdir(parents=True)
        for i, f in enumerate(freqs):
            sf.write(root / spk / f"{i}.wav", 0.1 * np.sin(2 * np.pi * f * t), 16000)
    return root


def npu_outputs(models: Path, preprocessed: Path, out: Path, noise: float) -> Path:
    """The bs1 model's outputs on the preprocessed batches, as ais_bench writes them; the first
    utterance's embedding moved by ``noise`` (an NPU build that is off)."""
    from graphkit.ir.ort import session

    sess = session(models / "ecapa_tdnn_bs1.onnx")
    stamp = out / "2024_01_01-12_00_00"
    stamp.mkdir(parents=True)
    for k, path in enumerate(sorted((preprocessed / "mel").glob("mel*.bin"))):
        x = np.fromfile(path, dtype=np.float32).reshape(1, 80, 200)
        for i, y in enumerate(sess.run(None, {"mel": x})):
            if i == 0 and path.stem == "mel0":
                y = y + noise * np.random.default_rng(k).standard_normal(y.shape).astype(np.float32)
            y.astype(np.float32).tofile(stamp / f"{path.stem}_{i}.bin")
    return out


@pytest.fixture
def npu_run(tmp_path, ecapa_bs1):
    def make(noise: float) -> list[str]:
        data = speakers(tmp_path / f"data{noise}")
        pre = tmp_path / f"pre{noise}"
        assert main(["-q", "preprocess", ECAPA, "--data", str(data), "--batch", "1", "-o", str(pre)]) == 0
        results = npu_outputs(ecapa_bs1, pre, tmp_path / f"result{noise}", noise)
        runners = ["--runner", "graphkit", "--runner", f"files={results}"]
        return [
            "-q",
            "eval",
            ECAPA,
            "--data",
            str(data),
            "--models",
            str(ecapa_bs1),
            "--batch",
            "1",
            *runners,
        ]

    return make


GATE = ["--max-delta", "centroid_roc_auc=1", "--max-score-delta", "1e-3", "--min-cosine", "0.9999"]


def test_a_breach_exits_1_after_writing_the_report(npu_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main([*npu_run(0.05), *GATE, "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "centroid_roc_auc" in captured.out  # the table
    lines = [line for line in captured.err.splitlines() if "eval gate breached" in line]
    assert len(lines) == 2, captured.err
    assert lines[0].startswith("graphkit: eval gate breached: runner 'files bs1', batch 1: max |Δ score| ")
    assert "(--max-score-delta) against graphkit bs1" in lines[0]
    assert lines[1].startswith("graphkit: eval gate breached: runner 'files bs1', batch 1: min cosine 0.")
    report = json.loads((out / "latest" / "eval.json").read_text())
    assert (out / "latest" / "eval.png").read_bytes()[:4] == b"\x89PNG"
    gate = report["gate"]
    assert (
        gate["passed"] is False
        and gate["min_cosine"] == 0.9999
        and gate["max_delta"] == {"centroid_roc_auc": 1.0}
    )
    assert [(b["runner"], b["batch"], b["metric"]) for b in gate["breaches"]] == [
        ("files bs1", 1, "max_abs_score_delta"),
        ("files bs1", 1, "min_cosine"),
    ]
    files = report["results"][1]
    assert gate["breaches"][1]["value"] == files["agreement"]["min_cosine"] < 0.9999


def test_must_not_fire_when_the_npu_outputs_agree(npu_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main([*npu_run(0.0), *GATE[2:], "--max-delta", "centroid_roc_auc=0", "-o", str(out)]) == 0
    assert "eval gate" not in capsys.readouterr().err
    gate = json.loads((out / "latest" / "eval.json").read_text())["gate"]
    assert gate["passed"] is True and gate["breaches"] == []


@pytest.mark.slow
def test_must_not_fire_on_the_real_data(librispeech, ecapa_bs1, tmp_path, capsys):
    """The real dataset, export against graphkit's model: the README's gate holds."""
    out = tmp_path / "eval"
    args = ["-q", "eval", ECAPA, "--data", str(librispeech), "--models", str(ecapa_bs1), "--batch", "1"]
    args += ["--runner", "export", "--runner", "graphkit", "--limit", "12", "-o", str(out)]
    limits = ["--max-delta", "eer_percent=0.01", "--max-delta", "trial_roc_auc=1e-4"]
    assert main([*args, *limits, "--max-score-delta", "1e-4", "--min-cosine", "0.9999"]) == 0
    assert "eval gate" not in capsys.readouterr().err
    report = json.loads((out / "latest" / "eval.json").read_text())
    assert report["trials"] > 0 and report["gate"]["passed"] is True
