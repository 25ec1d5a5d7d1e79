"""Verification and anti-spoofing metrics (numpy only); their score files are read by
:mod:`graphkit.data.scorefiles`.

Conventions: a higher score means "more target" (same speaker, or bona fide for a countermeasure).

- EER follows the ASVspoof 2019 / clovaai/aasist ``evaluation.py`` exactly: a stable mergesort of
  all scores; FRR(k) = (targets among the k lowest scores) / n_tar, FAR(k) = (non-targets above
  them) / n_non, with the point FRR=0, FAR=1 prepended and the threshold min−0.001 in front of it;
  EER = mean(FRR, FAR) at argmin |FRR − FAR|.
- min t-DCF is the ASVspoof 2019 legacy tandem formulation (see :func:`tandem_dcf`).
- ROC AUC is the Mann–Whitney statistic, P(target > non-target) + ½ P(tie).
- minDCF is the NIST detection cost, normalised by the cost of the best trivial system.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from graphkit.errors import DataError

__all__ = [
    "CostModel",
    "TandemDCF",
    "TrialLike",
    "centroid_scores",
    "compute_det_curve",
    "compute_eer",
    "min_dcf",
    "min_tdcf",
    "roc_auc",
    "tandem_dcf",
    "trial_scores",
]


def _scores(values: Iterable[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise DataError(f"no {name} scores: the metric needs at least one")
    if not np.isfinite(array).all():
        raise DataError(f"{name} scores contain NaN or inf")
    return array


# --- EER ------------------------------------------------------------------------------------


def compute_det_curve(
    target_scores: np.ndarray, nontarget_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frr, far, thresholds), each of length n_tar + n_non + 1, as ASVspoof's evaluation.py.

    Rejecting the k lowest scores (k = 0..n) gives frr[k] = targets among them / n_tar and
    far[k] = non-targets not among them / n_non; thresholds[k] is the k-th lowest score
    (thresholds[0] = min − 0.001). Ties keep their input order (targets first): stable mergesort.
    """
    tar = _scores(target_scores, "target")
    non = _scores(nontarget_scores, "non-target")
    all_scores = np.concatenate((tar, non))
    labels = np.concatenate((np.ones(tar.size), np.zeros(non.size)))
    order = np.argsort(all_scores, kind="mergesort")
    tar_sums = np.cumsum(labels[order])
    non_left = non.size - (np.arange(1, all_scores.size + 1) - tar_sums)
    frr = np.concatenate(([0.0], tar_sums / tar.size))
    far = np.concatenate(([1.0], non_left / non.size))
    thresholds = np.concatenate(([all_scores[order[0]] - 0.001], all_scores[order]))
    return frr, far, thresholds


def compute_eer(target_scores: np.ndarray, nontarget_scores: np.ndarray) -> tuple[float, float]:
    """(eer, threshold): EER = mean(FRR, FAR) at argmin |FRR − FAR| of :func:`compute_det_curve`.

    EER is a fraction (0.0106 = 1.06 %). Accept a score s when s > threshold.
    """
    frr, far, thresholds = compute_det_curve(target_scores, nontarget_scores)
    eer, i = eer_point(frr, far)
    return eer, float(thresholds[i])


def eer_point(frr: np.ndarray, far: np.ndarray) -> tuple[float, int]:
    """(EER, index) of a DET curve: mean(FRR, FAR) at argmin |FRR − FAR| (the plot marks it)."""
    i = int(np.argmin(np.abs(np.asarray(frr) - np.asarray(far))))
    return float((frr[i] + far[i]) / 2), i


# --- t-DCF ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostModel:
    """ASVspoof 2019 t-DCF cost model (defaults: the evaluation plan and clovaai/aasist)."""

    p_spoof: float = 0.05
    p_tar: float = 0.95 * 0.99
    p_non: float = 0.95 * 0.01
    c_miss_asv: float = 1.0
    c_fa_asv: float = 10.0
    c_miss_cm: float = 1.0
    c_fa_cm: float = 10.0


@dataclass(frozen=True)
class TandemDCF:
    """The min t-DCF and the figures behind it, for reports. Rates are fractions."""

    min_tdcf: float
    cm_threshold: float  # CM threshold at the minimum
    asv_eer: float
    asv_threshold: float
    pfa_asv: float
    pmiss_asv: float
    pmiss_spoof_asv: float
    c1: float
    c2: float


def tandem_dcf(
    bona_cm: np.ndarray,
    spoof_cm: np.ndarray,
    asv_target: np.ndarray,
    asv_nontarget: np.ndarray,
    asv_spoof: np.ndarray,
    costs: CostModel = CostModel(),
) -> TandemDCF:
    """Normalised min t-DCF, ASVspoof 2019 legacy formulation (Kinnunen et al. 2018).

    thr = ASV EER threshold (target vs non-target);
    Pfa_asv = P(non ≥ thr), Pmiss_asv = P(tar < thr), Pmiss_spoof_asv = P(spoof < thr);
    C1 = Ptar·(Cmiss_cm − Cmiss_asv·Pmiss_asv) − Pnon·Cfa_asv·Pfa_asv;
    C2 = Cfa_cm·Pspoof·(1 − Pmiss_spoof_asv);
    t-DCF(s) = (C1·Pmiss_cm(s) + C2·Pfa_cm(s)) / min(C1, C2) over the CM DET thresholds s;
    the result is its minimum.
    """
    priors = (costs.p_tar, costs.p_non, costs.p_spoof)
    if min(priors) < 0 or abs(sum(priors) - 1) > 1e-10:
        raise DataError(f"t-DCF priors must be non-negative and sum to 1, got {priors}")
    tar, non = _scores(asv_target, "ASV target"), _scores(asv_nontarget, "ASV non-target")
    spoof = _scores(asv_spoof, "ASV spoof")
    bona, spoof_cm_ = _scores(bona_cm, "CM bona fide"), _scores(spoof_cm, "CM spoof")
    if np.unique(np.concatenate((bona, spoof_cm_))).size < 3:
        raise DataError("CM scores have fewer than 3 unique values: give soft scores, not decisions")

    asv_eer, thr = compute_eer(tar, non)
    pfa_asv = float(np.mean(non >= thr))
    pmiss_asv = float(np.mean(tar < thr))
    pmiss_spoof_asv = float(np.mean(spoof < thr))
    c1 = costs.p_tar * (costs.c_miss_cm - costs.c_miss_asv * pmiss_asv)
    c1 -= costs.p_non * costs.c_fa_asv * pfa_asv
    c2 = costs.c_fa_cm * costs.p_spoof * (1 - pmiss_spoof_asv)
    if c1 < 0 or c2 < 0:
        raise DataError(f"t-DCF weights are negative (C1={c1:g}, C2={c2:g}): check the ASV scores")

    pmiss_cm, pfa_cm, cm_thresholds = compute_det_curve(bona, spoof_cm_)
    curve = (c1 * pmiss_cm + c2 * pfa_cm) / min(c1, c2)
    i = int(np.argmin(curve))
    return TandemDCF(
        min_tdcf=float(curve[i]),
        cm_threshold=float(cm_thresholds[i]),
        asv_eer=asv_eer,
        asv_threshold=thr,
        pfa_asv=pfa_asv,
        pmiss_asv=pmiss_asv,
        pmiss_spoof_asv=pmiss_spoof_asv,
        c1=float(c1),
        c2=float(c2),
    )


def min_tdcf(
    bona_cm: np.ndarray,
    spoof_cm: np.ndarray,
    asv_target: np.ndarray,
    asv_nontarget: np.ndarray,
    asv_spoof: np.ndarray,
) -> float:
    """Normalised min t-DCF with the default :class:`CostModel` (see :func:`tandem_dcf`)."""
    return tandem_dcf(bona_cm, spoof_cm, asv_target, asv_nontarget, asv_spoof).min_tdcf


# --- speaker verification -------------------------------------------------------------------


def roc_auc(target_scores: np.ndarray, nontarget_scores: np.ndarray) -> float:
    """Area under the ROC curve = P(tar > non) + ½·P(tar = non), by ranks in O(n log n).

    With mid-ranks r over all scores: AUC = (Σ r(tar) − n_tar(n_tar+1)/2) / (n_tar·n_non).
    """
    tar = _scores(target_scores, "target")
    non = _scores(nontarget_scores, "non-target")
    all_scores = np.concatenate((tar, non))
    _, inverse, counts = np.unique(all_scores, return_inverse=True, return_counts=True)
    # mid-rank of each distinct value: ranks before it + (count + 1) / 2
    mid = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = mid[inverse[: tar.size]].sum()
    return float((rank_sum - tar.size * (tar.size + 1) / 2) / (tar.size * non.size))


def min_dcf(
    target_scores: np.ndarray,
    nontarget_scores: np.ndarray,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost (NIST SRE).

    DCF(t) = c_miss·p_target·Pmiss(t) + c_fa·(1−p_target)·Pfa(t), Pmiss(t) = P(tar < t) and
    Pfa(t) = P(non ≥ t), minimised over thresholds t that fall between distinct scores (so tied
    scores are always decided together), then divided by min(c_miss·p_target, c_fa·(1−p_target)).
    """
    if not 0 < p_target < 1:
        raise DataError(f"p_target must be in (0, 1), got {p_target}")
    tar = _scores(target_scores, "target")
    non = _scores(nontarget_scores, "non-target")
    values = np.unique(np.concatenate((tar, non)))
    # rejecting every score < values[k]  for k = 0..n-1, plus rejecting everything
    pmiss = np.searchsorted(np.sort(tar), values, side="left") / tar.size
    pfa = 1 - np.searchsorted(np.sort(non), values, side="left") / non.size
    pmiss, pfa = np.append(pmiss, 1.0), np.append(pfa, 0.0)
    dcf = c_miss * p_target * pmiss + c_fa * (1 - p_target) * pfa
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def centroid_scores(embeddings: np.ndarray, speakers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All-vs-centroid scores of the ECAPA guide (seed-models §4.4).

    Each speaker's centroid is the L2-normalised mean of all its utterance embeddings (the
    utterance itself included). Every utterance is scored against every centroid by a dot
    product (embeddings as given); the own speaker's centroid gives a target score, every other
    speaker's a non-target one. N utterances, S speakers: N targets, N·(S−1) non-targets.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(speakers):
        raise DataError(
            f"centroid_scores needs an (N, D) array and N speakers, "
            f"got shape {emb.shape} and {len(speakers)} speakers"
        )
    names, index = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
    if names.size < 2:
        raise DataError("centroid_scores needs at least 2 speakers")
    sums = np.zeros((names.size, emb.shape[1]))
    np.add.at(sums, index, emb)
    means = sums / np.bincount(index)[:, None]
    centroids = means / np.linalg.norm(means, axis=1, keepdims=True)
    scores = emb @ centroids.T  # (N, S)
    own = np.zeros(scores.shape, dtype=bool)
    own[np.arange(emb.shape[0]), index] = True
    return scores[own], scores[~own]


class TrialLike(Protocol):
    """What :func:`trial_scores` reads from a trial (:class:`graphkit.data.datasets.Trial`)."""

    @property
    def enroll(self) -> str: ...
    @property
    def test(self) -> str: ...
    @property
    def target(self) -> bool: ...


def trial_scores(
    embeddings_by_id: Mapping[str, np.ndarray], trials: Iterable[TrialLike]
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels): the cosine similarity of each trial's enroll and test embeddings.

    ``trials`` are :class:`graphkit.data.datasets.Trial`-like objects (enroll, test, target).
    labels are booleans (True = target).
    """
    scores: list[float] = []
    labels: list[bool] = []
    normed: dict[str, np.ndarray] = {}

    def unit(utt: str, trial: TrialLike) -> np.ndarray:
        if utt not in normed:
            if utt not in embeddings_by_id:
                raise DataError(f"trial {trial.enroll} {trial.test}: no embedding for {utt}")
            vector = np.asarray(embeddings_by_id[utt], dtype=np.float64).ravel()
            norm = np.linalg.norm(vector)
            if not np.isfinite(norm) or norm == 0:
                raise DataError(
                    f"trial {trial.enroll} {trial.test}: embedding of {utt} is zero or not finite"
                )
            normed[utt] = vector / norm
        return normed[utt]

    for trial in trials:
        enroll = unit(trial.enroll, trial)
        test = unit(trial.test, trial)
        scores.append(float(enroll @ test))
        labels.append(bool(trial.target))
    return np.asarray(scores), np.asarray(labels, dtype=bool)
