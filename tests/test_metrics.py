"""graphkit.eval.scoring: golden ASVspoof figures, brute-force cross-checks, edge cases, parsers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.data.datasets import Trial
from graphkit.data.scorefiles import read_asv_scores, read_cm_protocol, read_cm_scores
from graphkit.errors import DataError
from graphkit.eval.scoring import (
    CostModel,
    centroid_scores,
    compute_det_curve,
    compute_eer,
    min_dcf,
    min_tdcf,
    roc_auc,
    tandem_dcf,
    trial_scores,
)

# --- golden: RawGAT-ST (mul) on the ASVspoof 2019 LA eval set --------------------------------


@pytest.fixture(scope="module")
def asvspoof(shared: Path) -> dict[str, np.ndarray]:
    meta = shared / "data" / "asvspoof2019-la-metadata"
    protocol = read_cm_protocol(meta / "ASVspoof2019.LA.cm.eval.trl.txt")
    scores = read_cm_scores(meta / "RawGAT_ST_mul.LA.eval.cm.scores.txt")
    assert scores.keys() == protocol.keys()
    asv = read_asv_scores(shared / "data" / "asvspoof2019" / "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt")
    keys = {utt: key for utt, (_, _, key) in protocol.items()}
    return {
        "bona": np.array([scores[u].score for u in protocol if keys[u] == "bonafide"]),
        "spoof": np.array([scores[u].score for u in protocol if keys[u] == "spoof"]),
        "tar": asv[0],
        "non": asv[1],
        "asv_spoof": asv[2],
    }


def test_golden_counts(asvspoof: dict[str, np.ndarray]) -> None:
    sizes = {k: v.size for k, v in asvspoof.items()}
    assert sizes == {"bona": 7355, "spoof": 63882, "tar": 5370, "non": 33327, "asv_spoof": 63882}


def test_golden_eer(asvspoof: dict[str, np.ndarray]) -> None:
    eer, _ = compute_eer(asvspoof["bona"], asvspoof["spoof"])
    assert eer * 100 == pytest.approx(1.060134752, abs=5e-10)  # the 9 stated digits


def test_golden_tdcf(asvspoof: dict[str, np.ndarray]) -> None:
    args = [asvspoof[k] for k in ("bona", "spoof", "tar", "non", "asv_spoof")]
    assert min_tdcf(*args) == pytest.approx(0.033538947, abs=5e-10)  # the 9 stated digits
    r = tandem_dcf(*args)
    assert r.min_tdcf == min_tdcf(*args)
    assert r.asv_eer * 100 == pytest.approx(2.45778, abs=5e-6)
    assert r.asv_threshold == pytest.approx(-5.6801, abs=5e-5)
    assert r.pfa_asv == pytest.approx(0.02460, abs=5e-6)
    assert r.pmiss_asv == pytest.approx(0.02458, abs=5e-6)
    assert r.pmiss_spoof_asv == pytest.approx(0.23935, abs=5e-6)
    assert r.c1 == pytest.approx(0.91504, abs=5e-6)
    assert r.c2 == pytest.approx(0.38033, abs=5e-6)


def test_golden_score_file_keys_agree_with_protocol(shared: Path) -> None:
    meta = shared / "data" / "asvspoof2019-la-metadata"
    protocol = read_cm_protocol(meta / "ASVspoof2019.LA.cm.eval.trl.txt")
    scores = read_cm_scores(meta / "RawGAT_ST_mul.LA.eval.cm.scores.txt")
    assert all((s.source, s.key) == protocol[u][1:] for u, s in scores.items())
    assert sum(key == "bonafide" for _, _, key in protocol.values()) == 7355


# --- EER / DET against brute force ------------------------------------------------------------


def brute_eer(tar: np.ndarray, non: np.ndarray) -> tuple[float, float]:
    """Scan thresholds t (reject s ≤ t) over min−0.001 and every score; distinct scores only."""
    best = None
    for t in np.concatenate(([min(tar.min(), non.min()) - 0.001], np.sort(np.r_[tar, non]))):
        frr, far = np.mean(tar <= t), np.mean(non > t)
        if best is None or abs(frr - far) < best[0]:
            best = (abs(frr - far), (frr + far) / 2, t)
    assert best is not None
    return best[1], best[2]


distinct = st.lists(
    st.floats(-100, 100, allow_nan=False, allow_subnormal=False), min_size=2, max_size=40, unique=True
)


@settings(max_examples=150, deadline=None)
@given(distinct, st.data())
def test_eer_matches_threshold_scan(values: list[float], data: st.DataObject) -> None:
    n_tar = data.draw(st.integers(1, len(values) - 1))
    tar, non = np.array(values[:n_tar]), np.array(values[n_tar:])
    eer, thr = compute_eer(tar, non)
    ref_eer, ref_thr = brute_eer(tar, non)
    assert eer == pytest.approx(ref_eer, abs=1e-12)
    assert thr == ref_thr


def test_det_curve_shape_and_ends() -> None:
    frr, far, thr = compute_det_curve(np.array([0.9, 0.8]), np.array([0.1, 0.2, 0.85]))
    assert frr.tolist() == [0, 0, 0, 0.5, 0.5, 1]
    assert far.tolist() == pytest.approx([1, 2 / 3, 1 / 3, 1 / 3, 0, 0])
    assert thr.tolist() == pytest.approx([0.099, 0.1, 0.2, 0.8, 0.85, 0.9])


def test_eer_perfect_and_reversed() -> None:
    assert compute_eer(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == (0.0, 1.0)
    assert compute_eer(np.array([0.0, 1.0]), np.array([2.0, 3.0]))[0] == 1.0


@pytest.mark.parametrize("bad", [[], [np.nan], [np.inf]])
def test_eer_rejects_bad_scores(bad: list[float]) -> None:
    with pytest.raises(DataError):
        compute_eer(np.array(bad), np.array([0.0]))


# --- t-DCF edge cases -------------------------------------------------------------------------


def tdcf_args() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.normal(2, 1, 50),
        rng.normal(-2, 1, 200),
        rng.normal(5, 1, 40),
        rng.normal(-5, 1, 400),
        rng.normal(0, 2, 100),
    ]


def test_tdcf_brute_force() -> None:
    bona, spoof, tar, non, asv_spoof = tdcf_args()
    r = tandem_dcf(bona, spoof, tar, non, asv_spoof)
    thr = r.asv_threshold
    c1 = 0.95 * 0.99 * (1 - np.mean(tar < thr)) - 0.95 * 0.01 * 10 * np.mean(non >= thr)
    c2 = 10 * 0.05 * (1 - np.mean(asv_spoof < thr))
    assert (r.c1, r.c2) == pytest.approx((c1, c2))
    ts = np.r_[min(bona.min(), spoof.min()) - 1, np.r_[bona, spoof]]
    ref = min(c1 * np.mean(bona <= t) + c2 * np.mean(spoof > t) for t in ts) / min(c1, c2)
    assert r.min_tdcf == pytest.approx(ref)
    # the trivial systems bound it: accept all → C2/min, reject all → C1/min
    assert r.min_tdcf <= min(c1, c2) / min(c1, c2) + 1e-12


def test_tdcf_sanity_checks() -> None:
    bona, spoof, tar, non, asv_spoof = tdcf_args()
    with pytest.raises(DataError, match="priors"):
        tandem_dcf(bona, spoof, tar, non, asv_spoof, CostModel(p_spoof=0.1))
    with pytest.raises(DataError, match="NaN"):
        min_tdcf(np.r_[bona, np.nan], spoof, tar, non, asv_spoof)
    with pytest.raises(DataError, match="NaN"):
        min_tdcf(bona, spoof, tar, np.r_[non, np.inf], asv_spoof)
    with pytest.raises(DataError, match="3 unique"):
        min_tdcf(np.ones(5), np.zeros(5), tar, non, asv_spoof)
    with pytest.raises(DataError, match="negative"):
        # ASV accepts every non-target at its EER threshold when the classes are swapped
        min_tdcf(bona, spoof, non[:40], tar, asv_spoof)
    assert issubclass(DataError, Exception)


# --- ROC AUC, minDCF --------------------------------------------------------------------------


def brute_auc(tar: np.ndarray, non: np.ndarray) -> float:
    diff = tar[:, None] - non[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=30),
    st.lists(st.integers(-5, 5), min_size=1, max_size=30),
)
def test_roc_auc_matches_pairwise_definition(tar: list[int], non: list[int]) -> None:
    t, n = np.array(tar, float), np.array(non, float)
    assert roc_auc(t, n) == pytest.approx(brute_auc(t, n), abs=1e-12)


def test_roc_auc_fast_on_186k() -> None:
    rng = np.random.default_rng(1)
    tar, non = rng.normal(1, 1, 4648), rng.normal(0, 1, 181272)
    auc = roc_auc(tar, non)
    assert 0.74 < auc < 0.78  # Φ(1/√2) ≈ 0.760
    assert roc_auc(np.array([1.0]), np.array([1.0])) == 0.5


def brute_min_dcf(tar: np.ndarray, non: np.ndarray, p: float, cm: float, cfa: float) -> float:
    ts = np.r_[np.unique(np.r_[tar, non]), np.inf]
    dcf = [cm * p * np.mean(tar < t) + cfa * (1 - p) * np.mean(non >= t) for t in ts]
    return min(dcf) / min(cm * p, cfa * (1 - p))


def test_min_dcf_hand_example() -> None:
    tar, non = np.array([0.9, 0.8, 0.3]), np.array([0.1, 0.2, 0.4, 0.85])
    # p=0.5, thresholds (reject s < t): t=0.3 → Pmiss 0, Pfa 2/4 → (0.5·0 + 0.5·0.5)/0.5 = 0.5;
    # t=0.8 → 1/3 + 1/4 = 7/12; t=0.9 → 2/3 + 0 ; accept all → 1; reject all → 1
    assert min_dcf(tar, non, 0.5) == pytest.approx(0.5)
    # p=0.05: t=0.9 (only 0.9 accepted) → 0.05·(2/3)/0.05 = 2/3, every other t costs more
    assert min_dcf(tar, non, 0.05) == pytest.approx(2 / 3)
    for p in (0.01, 0.05, 0.5):
        assert min_dcf(tar, non, p) == pytest.approx(brute_min_dcf(tar, non, p, 1, 1))
    assert min_dcf(tar, non, 0.05, c_miss=10) == pytest.approx(brute_min_dcf(tar, non, 0.05, 10, 1))
    assert min_dcf(np.array([2.0, 3.0]), np.array([0.0, 1.0]), 0.01) == 0.0
    with pytest.raises(DataError):
        min_dcf(tar, non, 1.0)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=20),
    st.lists(st.integers(-5, 5), min_size=1, max_size=20),
    st.sampled_from([0.01, 0.05, 0.3]),
)
def test_min_dcf_matches_brute_force(tar: list[int], non: list[int], p: float) -> None:
    t, n = np.array(tar, float), np.array(non, float)
    assert min_dcf(t, n, p) == pytest.approx(brute_min_dcf(t, n, p, 1, 1))
    assert 0 <= min_dcf(t, n, p) <= 1 + 1e-12


# --- centroid protocol, trial scores ----------------------------------------------------------


def test_centroid_scores_hand_example() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    tar, non = centroid_scores(emb, ["a", "a", "b"])
    # centroid a = (0.5, 0.5)/|·| = (1, 1)/√2; centroid b = (0, 1)
    r = 1 / np.sqrt(2)
    assert tar.tolist() == pytest.approx([r, r, 2.0])
    assert non.tolist() == pytest.approx([0.0, 1.0, 2 * r])
    with pytest.raises(DataError):
        centroid_scores(emb, ["a", "a"])
    with pytest.raises(DataError):
        centroid_scores(emb, ["a", "a", "a"])


def test_centroid_counts() -> None:
    rng = np.random.default_rng(2)
    speakers = [f"s{i % 4}" for i in range(20)]
    tar, non = centroid_scores(rng.normal(size=(20, 8)), speakers)
    assert (tar.size, non.size) == (20, 60)


def test_trial_scores_cosine_and_missing() -> None:
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([3.0, 3.0]), "c": np.array([0.0, -2.0])}
    trials = [Trial("a", "b", True), Trial("a", "c", False)]
    scores, labels = trial_scores(emb, trials)
    assert scores.tolist() == pytest.approx([1 / np.sqrt(2), 0.0])
    assert labels.tolist() == [True, False]
    with pytest.raises(DataError, match="trial a x: no embedding for x"):
        trial_scores(emb, [Trial("a", "x", False)])
    with pytest.raises(DataError, match="embedding of z is zero"):
        trial_scores({**emb, "z": np.zeros(2)}, [Trial("z", "a", False)])


# --- parsers ----------------------------------------------------------------------------------


def test_parsers_formats_and_errors(tmp_path: Path) -> None:
    two = tmp_path / "two.txt"
    two.write_text("u1 0.5\nu2 -1e3\n")
    assert read_cm_scores(two)["u2"].score == -1000.0
    four = tmp_path / "four.txt"
    four.write_text("u1 - bonafide 0.5\nu2 A07 spoof 0.1\n")
    assert read_cm_scores(four)["u2"].source == "A07"

    cases = {
        "u1 0.5\nu2\n": ":2:",
        "u1 abc\n": ":1: score 'abc'",
        "u1 nan\n": ":1:",
        "u1 - fake 0.5\n": ":1: key",
        "u1 1\nu1 2\n": ":2: utterance u1 scored twice",
        "": "no scores",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(DataError, match=message):
            read_cm_scores(bad)

    proto = tmp_path / "proto.txt"
    proto.write_text("LA_0039 LA_E_1 - A11 spoof\nLA_0040 LA_E_2 - - bonafide\n")
    assert read_cm_protocol(proto)["LA_E_2"] == ("LA_0040", "-", "bonafide")
    proto.write_text("LA_0039 LA_E_1 - A11 spoof\nLA_0039 LA_E_3 A11 spoof\n")
    with pytest.raises(DataError, match=r"proto\.txt:2:"):
        read_cm_protocol(proto)

    asv = tmp_path / "asv.txt"
    asv.write_text("bonafide target 1\nbonafide nontarget -1\nA07 spoof 0\n")
    assert [a.tolist() for a in read_asv_scores(asv)] == [[1.0], [-1.0], [0.0]]
    asv.write_text("bonafide target 1\nbonafide other -1\n")
    with pytest.raises(DataError, match=r"asv\.txt:2:"):
        read_asv_scores(asv)
    asv.write_text("bonafide target 1\nbonafide nontarget -1\n")
    with pytest.raises(DataError, match="no spoof scores"):
        read_asv_scores(asv)
    with pytest.raises(DataError, match="not found"):
        read_asv_scores(tmp_path / "absent.txt")
