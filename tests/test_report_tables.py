"""What eval, bench and compare show: every metric in eval's table, the figure compare ranks its
worst tensors by, DET curves on the probit scale, and a report folder per eval/bench run.

Synthetic (seeded) scores for the tables and plots; a tiny anti-spoofing model for the runs.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_interrupt_eval import task_recipe

from graphkit.cli import main
from graphkit.debug.compare import CompareReport, Thresholds, compare_tensor, render
from graphkit.eval import det
from graphkit.eval import scoring as M
from graphkit.eval.evaluate import EvalReport, RunResult
from graphkit.eval.plots import eval_figure
from graphkit.eval.report import render_eval
from graphkit.eval.runs import LATEST, stamp, write_run
from graphkit.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
ECAPA = ROOT / "recipes" / "ecapa.yaml"
AASIST = ROOT / "recipes" / "aasist.yaml"


def scores(seed: int, shift: float = 2.0, n_tar: int = 100, n_non: int = 1000) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n_tar), rng.normal(0.0, 1.0, n_non)


def sv_result(runner: str, batch: int | None, tar: np.ndarray, non: np.ndarray) -> RunResult:
    eer, _ = M.compute_eer(tar, non)
    metrics = {
        "centroid_roc_auc": 0.75,
        "eer_percent": 100 * eer,
        "min_dcf_0.01": M.min_dcf(tar, non, 0.01),
        "min_dcf_0.05": M.min_dcf(tar, non, 0.05),
        "trial_roc_auc": M.roc_auc(tar, non),
    }
    frr, far, _ = M.compute_det_curve(tar, non)
    return RunResult(runner, batch, metrics, np.concatenate([tar, non]), curve=(far, frr))


def sv_report(results: list[RunResult]) -> EvalReport:
    ref = results[0]
    for r in results[1:]:
        r.agreement = {"max_abs_score_delta": float(np.abs(r.scores - ref.scores).max()), "min_cosine": 0.99}
    return EvalReport(
        load_recipe(ECAPA), "speaker_verification", 100, 1100, "eer_percent", [4], Path("m"), results
    )


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the rows of a rendered table (columns split at 2+ spaces)."""
    import re

    lines = [line for line in text.splitlines() if line.strip()]
    i = next(k for k, line in enumerate(lines) if set(lines[k + 1].replace(" ", "")) == {"-"})
    split = [re.split(r"\s{2,}", line.strip()) for line in lines[i:]]
    return split[0], [row for row in split[2:] if len(row) > 2]


# --- eval's table ------------------------------------------------------------------------------


def test_the_eval_table_shows_every_speaker_verification_metric():
    tar, non = scores(0)
    results = [
        sv_result("torch", None, tar, non),
        sv_result("export", None, tar, non),
        sv_result("graphkit bs4", 4, tar + 1e-6, non),
        sv_result("ort_cuda bs4", 4, tar, non + 0.1),
    ]
    text = render_eval(sv_report(results))
    head, rows = table(text)
    assert head == [
        "runner", "batch", "eer_percent", "centroid_roc_auc", "min_dcf_0.01", "min_dcf_0.05",
        "trial_roc_auc", "Δ eer_percent", "max|Δ| score", "min cos",
    ]  # fmt: skip
    assert [r[:2] for r in rows] == [
        ["torch", "-"],
        ["export", "-"],
        ["graphkit", "4"],
        ["ort_cuda", "4"],
    ]
    for row, result in zip(rows, results):
        for name, cell in zip(head[2:7], row[2:7]):
            assert cell == f"{result.metrics[name]:.4f}", name
    assert rows[0][7] == "(reference)" and rows[2][7] == "0"
    delta = results[3].metrics["eer_percent"] - results[0].metrics["eer_percent"]
    assert rows[3][7] == f"{delta:+.1e}" and rows[3][9] == "0.9900000"
    assert "main metric eer_percent; Δ and agreement against torch" in text.splitlines()[0]


def test_the_eval_table_shows_every_anti_spoofing_metric():
    bona, spoof = scores(1)
    metrics = {"eer_percent": 1.5, "roc_auc": 0.99, "min_tdcf": 0.0335}
    results = [RunResult("torch", None, metrics, bona), RunResult("files:om_a bs1", 1, dict(metrics), bona)]
    results[1].agreement = {"max_abs_score_delta": 0.0}
    report = EvalReport(load_recipe(AASIST), "anti_spoofing", 10, 0, "eer_percent", [1], Path("m"), results)
    head, rows = table(render_eval(report))
    assert head == ["runner", "batch", "eer_percent", "roc_auc", "min_tdcf", "Δ eer_percent", "max|Δ| score"]
    assert rows[1] == ["files:om_a", "1", "1.5000", "0.9900", "0.0335", "0", "0.0e+00"]


# --- compare's worst tensors ---------------------------------------------------------------------


def test_compares_worst_table_shows_the_figure_it_ranks_by():
    rng = np.random.default_rng(0)
    g = rng.standard_normal(1000)
    rows = [
        compare_tensor(f"t{k}", g, g + eps * rng.standard_normal(1000))
        for k, eps in enumerate([3e-5, 3e-4, 1e-4])
    ]
    out = compare_tensor("y", g, g, is_output=True)
    text = render(CompareReport("a", "b", "model-model", Thresholds(), [*rows, out]))
    worst = text[text.index("worst 3 of 3") :]
    assert (
        worst.splitlines()[0]
        == "worst 3 of 3 intermediate tensors, abnormal first, then by 1-cos, largest first:"
    )
    head, body = table(worst)
    assert head[:5] == ["tensor", "op", "shape", "1-cos", "cosine"]
    assert [r[0] for r in body] == ["t1", "t2", "t0"]  # 1-cos descending
    figures = [float(r[3]) for r in body]
    assert figures == sorted(figures, reverse=True) and figures[0] > 0
    for r, row in zip(body, [rows[1], rows[2], rows[0]]):
        assert float(r[3]) == pytest.approx(1 - row.metrics.cosine, rel=1e-2)
    assert {r[4] for r in body} == {"1.000000"}  # what the cosine column alone shows
    outputs = text[text.index("network outputs:") : text.index("worst")]
    assert "1-cos" not in outputs  # the outputs are not ranked


# --- DET plot -----------------------------------------------------------------------------------


def test_probit_is_the_normal_quantile_and_refuses_0_and_1():
    np.testing.assert_allclose(
        det.probit([0.5, 0.975, 0.001, 0.4]), [0, 1.959964, -3.090232, -0.253347], atol=1e-6
    )
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            det.probit([0.2, bad])
    assert (
        det.tick_label(0.001) == "0.1 %" and det.tick_label(0.4) == "40 %" and det.tick_label(0.05) == "5 %"
    )


def test_det_points_drop_zero_rates_instead_of_flooring_them():
    far = np.array([1.0, 0.5, 0.1, 0.0, 0.0])
    frr = np.array([0.0, 0.0, 0.2, 0.2, 1.0])
    x, y = det.det_points(far, frr)
    assert list(x) == [0.1] and list(y) == [0.2]
    assert list(det.frr_at(far, frr, np.array([0.0, 0.05, 0.1, 0.7]))) == [0.2, 0.2, 0.2, 0.0]


def curves(fig, gid: str) -> dict[str, np.ndarray]:
    return {
        line.get_gid()[len(gid) + 1 :]: np.asarray(line.get_xydata())
        for line in fig.axes[0].lines
        if (line.get_gid() or "").startswith(gid + " ")
    }


def test_the_det_plot_is_probit_with_the_eer_marked_and_no_point_off_the_axes():
    tar, non = scores(2, shift=2.5)
    tar[:5] = 99.0  # far above every non-target: FAR reaches 0 while FRR is still > 0
    results = [sv_result("torch", None, tar, non), sv_result("graphkit bs4", 4, tar, non + 0.05)]
    report = sv_report(results)
    fig = eval_figure(report)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    for name, xy in curves(fig, "det").items():
        assert np.isfinite(xy).all() and len(xy) > 100, name
        assert xy.min() >= lo and xy.min() >= ax.get_xlim()[0], name  # no floor spike below the axes
    assert det.det_points(*results[0].curve)[0].size < len(results[0].curve[0])  # zero rates were there
    assert all(t.get_text().endswith(" %") for t in ax.get_xticklabels() + ax.get_yticklabels())
    eers = curves(fig, "eer")
    for r in results:
        (x, y) = eers[r.runner][0]
        assert x == y  # on FRR = FAR
        assert 100 * float(det._cdf(x)) == pytest.approx(r.metrics["eer_percent"], abs=1e-9)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"graphkit bs4 — EER {results[1].metrics['eer_percent']:.2f} %" in legend
    assert legend[0].startswith("torch (reference) — EER ")
    panel = fig.axes[1]
    assert "largest |ΔFRR|" in panel.get_title()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_coinciding_curves_stay_distinguishable():
    tar, non = scores(3)
    results = [
        sv_result("torch", None, tar, non),
        *(sv_result(f"graphkit bs{b}", b, tar, non) for b in (1, 4)),
    ]
    fig = eval_figure(sv_report(results))
    lines = [line for line in fig.axes[0].lines if (line.get_gid() or "").startswith("det ")]
    assert len({(line.get_linestyle(), line.get_marker(), line.get_linewidth()) for line in lines}) == 3
    assert "every curve coincides with it" in fig.axes[1].get_title()
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- a report folder per run ---------------------------------------------------------------------


def test_runs_of_the_same_second_get_their_own_folders(tmp_path):
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    def writer(text: str):
        return lambda folder: (folder / "r.json").write_text(text)

    first = write_run(tmp_path, ["r.json"], writer("1"), now=now)
    second = write_run(tmp_path, ["r.json"], writer("2"), now=now)
    assert stamp(now) == "20250102T030405Z"
    assert (first.folder.name, second.folder.name) == ("20250102T030405Z", "20250102T030405Z-2")
    assert os.readlink(tmp_path / LATEST) == "20250102T030405Z-2"  # relative: the folder can move
    assert (tmp_path / LATEST / "r.json").read_text() == "2" and (first.folder / "r.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20250102T030405Z", "20250102T030405Z-2", LATEST]
    assert second.describe() == f"wrote {second.folder / 'r.json'}; {tmp_path / LATEST} points to it"


def test_a_failed_write_leaves_no_run_and_latest_as_it_was(tmp_path):
    write_run(tmp_path, ["r.json"], lambda f: (f / "r.json").write_text("1"))

    def fail(folder: Path) -> None:
        (folder / "r.json").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_run(tmp_path, ["r.json"], fail)
    assert len(list(tmp_path.iterdir())) == 2 and (tmp_path / LATEST / "r.json").read_text() == "1"


def test_a_folder_named_latest_is_kept_with_a_warning(tmp_path, caplog):
    (tmp_path / LATEST).mkdir()
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        run = write_run(tmp_path, ["r.json"], lambda f: (f / "r.json").write_text("1"))
    assert run.latest is None and (run.folder / "r.json").is_file() and (tmp_path / LATEST).is_dir()
    assert "not pointed at" in caplog.text and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def tones(root: Path) -> list[str]:
    for label, freqs in (("bona", (220, 330)), ("spoof", (440, 550))):
        (root / label).mkdir(parents=True)
        for f in freqs:
            t = np.arange(16000) / 16000
            sf.write(root / label / f"{f}.wav", 0.1 * np.sin(2 * np.pi * f * t), 16000)
    return ["--data", f"{root / 'bona'}=bonafide", "--data", f"{root / 'spoof'}=spoof"]


def test_two_eval_and_bench_runs_keep_two_reports_and_latest_is_the_second(tmp_path, capsys):
    recipe = task_recipe(tmp_path, layers=1, batch_sizes=(1,))
    models = tmp_path / "models"
    assert main(["-q", "apply", str(recipe), "-o", str(models), "--no-lint"]) == 0
    evals = ["-q", "eval", str(recipe), "--models", str(models), "--runner", "export", "--runner", "graphkit"]
    benches = ["-q", "bench", str(recipe), "--models", str(models), "--loops", "1", "--warmup", "0"]
    explicit = tmp_path / "explicit"
    capsys.readouterr()
    for command, folder, name in [
        ([*evals, *tones(tmp_path / "data")], models / "eval", "eval"),  # <models>/eval by default
        ([*benches, "-o", str(explicit)], explicit, "bench"),  # -o DIR: the same inside DIR
    ]:
        assert main(command) == 0
        assert main(command) == 0
        printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote ")]
        runs = sorted(p for p in folder.iterdir() if p.name != LATEST)
        assert len(runs) == 2 and len(printed) == 2, printed
        assert (folder / LATEST).resolve() == runs[1].resolve()
        for run, line in zip(runs, printed):
            assert line == f"wrote {run / f'{name}.json'} and {name}.png; {folder / LATEST} points to it"
            assert json.loads((run / f"{name}.json").read_text())["recipe"]["name"] == "slow"
            assert (run / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
