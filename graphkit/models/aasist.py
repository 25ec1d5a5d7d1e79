"""AASIST and AASIST-L anti-spoofing models (clovaai/aasist, seed-models.md §2).

Written for graphkit from the description in seed-models.md §2.3 (no upstream code). The
state-dict keys are exactly those of the published checkpoints (229 tensors), so
``AASIST-L.pth`` and ``AASIST.pth`` load strictly. The export module takes a raw 16 kHz
waveform (B, 64600) and returns upstream's two outputs, ``hidden`` (B, 160) and ``logits``
(B, 2); the bona fide score is ``logits[:, 1]``, a raw logit.

Points kept on purpose because the published graph has them:

- The sinc front-end is a fixed filter bank computed here, held as a non-persistent buffer: it
  is in no state dict, like upstream's plain tensor attribute.
- Residual blocks 1–5 compute BN+SELU of their input and throw it away (conv1 reads the raw
  input). In eval mode this is dead code that the ONNX exporter removes, but ``bn1`` stays so
  that checkpoints load strictly (and, in train mode, its running statistics move as upstream).
- The HS-GAL attention map is written block by block into a zeros board by slice assignment,
  which exports as 4 ScatterND per layer; graphkit's passes are what remove them.
- The learnable master nodes (1, 1, D) are passed as they are and broadcast over the batch.

Dropout sits where §2.3 puts it and acts only in train mode (its rates, 0.2/0.3/0.5 as in
upstream's training, never reach the export); both builders return the module in eval mode.
Upstream's ``Freq_aug`` (zeroing a random block of filters while training) is a forward flag
that defaults to off; it is not part of the export signature and is left out.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from graphkit.errors import ModelError, check_interrupted
from graphkit.models import TORCH_MISSING

try:
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn
except ImportError as exc:  # torch is an optional extra
    check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
    raise ModelError(TORCH_MISSING) from exc

from graphkit.models._checkpoint import load_weights

logger = logging.getLogger("graphkit.models")

SAMPLE_RATE = 16_000
N_SAMPLES = 64_600  # ≈ 4 s: longer audio is cut to its start, shorter audio tiled (§2.7)
N_FFT = 512  # upstream's band-edge grid: the mel range of 0…8 kHz on 257 FFT bins
N_SPECTRAL_NODES = 23  # rows left by the 3×3 pool of 70 filter rows: pos_S has one per row


@dataclass(frozen=True)
class AasistConfig:
    """The ``model_config`` block of upstream's ``config/*.conf`` (§2.1)."""

    first_conv: int  # sinc kernel length; an even value is bumped to the next odd one
    filts: tuple  # (n_filters, (in, out) of block 0, of block 1, of block 2, of blocks 3–5)
    gat_dims: tuple[int, int]  # (GAT_S/T out = HS-GAL in of layer 1, HS-GAL out)
    pool_ratios: tuple[float, float, float, float]  # pool_S, pool_T, all four pool_h*; 4th unused
    temperatures: tuple[float, float, float, float]  # GAT_S, GAT_T, all four HS-GAL; 4th unused


AASIST_L = AasistConfig(
    first_conv=128,
    filts=(70, (1, 32), (32, 32), (32, 24), (24, 24)),
    gat_dims=(24, 32),
    pool_ratios=(0.4, 0.5, 0.7, 0.5),
    temperatures=(2.0, 2.0, 100.0, 100.0),
)
AASIST = AasistConfig(
    first_conv=128,
    filts=(70, (1, 32), (32, 32), (32, 64), (64, 64)),
    gat_dims=(64, 32),
    pool_ratios=(0.5, 0.7, 0.5, 0.5),
    temperatures=(2.0, 2.0, 100.0, 100.0),
)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def sinc_filter_bank(n_filters: int, kernel_size: int, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """Mel-spaced band-pass filters (n_filters, 1, K), K odd: upstream's fixed front-end.

    Band edges: n_filters + 1 points equally spaced in mel between the lowest and highest mel
    value of the FFT bin grid (0 Hz and sample_rate/2), converted back to Hz. Filter i is
    ``hamming(K) · (lp(f_{i+1}) − lp(f_i))`` with the ideal low-pass kernel
    ``lp(f)[n] = (2f/sr) · sinc(2f·n/sr)`` on taps n = −(K−1)/2 … (K−1)/2.
    Computed in float64 and rounded once to float32. Evaluating the sinc argument in float32
    instead (a float32 tap grid) moves taps by ≤ 2e-7 and the AASIST-L logits by ~3e-6.
    """
    if kernel_size % 2 == 0:
        kernel_size += 1  # upstream: an even first_conv becomes the next odd length
    bins_mel = _hz_to_mel(np.linspace(0.0, sample_rate / 2, N_FFT // 2 + 1))
    edges = _mel_to_hz(np.linspace(bins_mel.min(), bins_mel.max(), n_filters + 1))
    taps = np.arange(kernel_size) - (kernel_size - 1) / 2

    def lowpass(f: np.ndarray) -> np.ndarray:  # (F,) cut-offs -> (F, K) kernels
        return (2 * f[:, None] / sample_rate) * np.sinc(2 * f[:, None] * taps / sample_rate)

    bank = np.hamming(kernel_size) * (lowpass(edges[1:]) - lowpass(edges[:-1]))
    return torch.from_numpy(bank.astype(np.float32)).unsqueeze(1)


class SincConv(nn.Module):
    """Fixed sinc filter bank as a Conv1d: (B, 1, T) -> (B, n_filters, T − K + 1)."""

    def __init__(self, n_filters: int, kernel_size: int) -> None:
        super().__init__()
        # not persistent: upstream holds it as a plain attribute, so no checkpoint has it
        self.register_buffer("filters", sinc_filter_bank(n_filters, kernel_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.filters)  # stride 1, no padding, no bias


class ResidualBlock(nn.Module):
    """conv1 2×3 → BN → SELU → conv2 2×3, plus the (downsampled) identity, then max-pool 1×3."""

    def __init__(self, in_ch: int, out_ch: int, *, first: bool = False) -> None:
        super().__init__()
        self.bn1 = None if first else nn.BatchNorm2d(in_ch)  # feeds nothing: see forward
        self.conv1 = nn.Conv2d(in_ch, out_ch, (2, 3), padding=(1, 1))  # height H -> H + 1
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, (2, 3), padding=(0, 1))  # height back to H
        self.conv_downsample = None
        if in_ch != out_ch:
            self.conv_downsample = nn.Conv2d(in_ch, out_ch, (1, 3), padding=(0, 1))
        self.pool = nn.MaxPool2d((1, 3))

    def forward(self, x: Tensor) -> Tensor:
        if self.bn1 is not None:
            _ = F.selu(self.bn1(x))  # upstream quirk: computed, then conv1 reads x, not this
        out = self.conv2(F.selu(self.bn2(self.conv1(x))))
        identity = x if self.conv_downsample is None else self.conv_downsample(x)
        return self.pool(out + identity)


class NodeSoftmax(nn.Module):
    """Attention weights softmax(s / T) over the neighbour axis (−2): its own module so that
    forward hooks can read the maps."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: Tensor) -> Tensor:
        return F.softmax(scores / self.temperature, dim=-2)


def _att_weight(dim: int) -> nn.Parameter:
    weight = nn.Parameter(torch.empty(dim, 1))
    nn.init.xavier_normal_(weight)
    return weight


def _pairwise(x: Tensor) -> Tensor:
    """(B, N, D) -> (B, N, N, D) with [b, i, j] = x_i ⊙ x_j, by expand and transpose as
    upstream, so the exported pattern (Unsqueeze → Expand → Transpose → Mul) is the same."""
    grid = x.unsqueeze(2).expand(-1, -1, x.size(1), -1)
    return grid * grid.transpose(1, 2)


def _node_bn(bn: nn.Module, x: Tensor) -> Tensor:
    return bn(x.reshape(-1, x.size(-1))).reshape(x.shape)  # BN1d over the (B·N, D) rows


class GraphAttentionLayer(nn.Module):
    """GAT: A = softmax_j(tanh(W_a(x_i⊙x_j))·w / T); y = SELU(BN(W₁(A·x) + W₂x))."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float) -> None:
        super().__init__()
        self.att_weight = _att_weight(out_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(0.2)
        self.node_softmax = NodeSoftmax(temperature)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_drop(x)
        att = self.node_softmax(torch.tanh(self.att_proj(_pairwise(x))) @ self.att_weight)
        y = self.proj_with_att(att.squeeze(-1) @ x) + self.proj_without_att(x)
        return F.selu(_node_bn(self.bn, y))


class HtrgGraphAttentionLayer(nn.Module):
    """HS-GAL: one GAT over temporal + spectral nodes with type-dependent attention weights,
    plus a master node that attends to all nodes. Returns (temporal, spectral, master)."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float) -> None:
        super().__init__()
        self.att_weight11 = _att_weight(out_dim)  # T–T block
        self.att_weight22 = _att_weight(out_dim)  # S–S block
        self.att_weight12 = _att_weight(out_dim)  # both cross blocks
        self.att_weightM = _att_weight(out_dim)  # master -> nodes
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(0.2)
        self.node_softmax = NodeSoftmax(temperature)
        self.master_softmax = NodeSoftmax(temperature)

    def forward(self, x_t: Tensor, x_s: Tensor, master: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n_t = x_t.size(1)
        x = torch.cat((self.proj_type1(x_t), self.proj_type2(x_s)), dim=1)
        x = self.input_drop(x)
        att = self.node_softmax(self._node_scores(x, n_t))
        master = self._update_master(x, master)
        y = F.selu(_node_bn(self.bn, self.proj_with_att(att.squeeze(-1) @ x) + self.proj_without_att(x)))
        return y[:, :n_t], y[:, n_t:], master

    def _node_scores(self, x: Tensor, n_t: int) -> Tensor:
        """(B, N, N, 1) attention logits, assembled block by block on a zeros board."""
        h = torch.tanh(self.att_proj(_pairwise(x)))
        board = torch.zeros_like(h[:, :, :, 0]).unsqueeze(-1)
        board[:, :n_t, :n_t, :] = h[:, :n_t, :n_t, :] @ self.att_weight11
        board[:, n_t:, n_t:, :] = h[:, n_t:, n_t:, :] @ self.att_weight22
        board[:, :n_t, n_t:, :] = h[:, :n_t, n_t:, :] @ self.att_weight12
        board[:, n_t:, :n_t, :] = h[:, n_t:, :n_t, :] @ self.att_weight12
        return board

    def _update_master(self, x: Tensor, master: Tensor) -> Tensor:
        # a = softmax_n(tanh(W_aM(x_n ⊙ m))·w_M / T);  m' = W₁M(aᵀx) + W₂M m  (no BN, no SELU)
        att = self.master_softmax(torch.tanh(self.att_projM(x * master)) @ self.att_weightM)
        return self.proj_with_attM(att.squeeze(-1).unsqueeze(1) @ x) + self.proj_without_attM(master)


class GraphPool(nn.Module):
    """Keep the top max(⌊N·ratio⌋, 1) nodes by σ(w·h + b), each scaled by its score."""

    def __init__(self, ratio: float, in_dim: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(0.3)

    def forward(self, h: Tensor) -> Tensor:
        scores = torch.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        k = max(int(h.size(1) * self.ratio), 1)
        index = torch.topk(scores, k, dim=1).indices.expand(-1, -1, h.size(2))  # sorted, largest
        return torch.gather(h * scores, 1, index)


class Aasist(nn.Module):
    """The export module: ``forward(waveform (B, 64600)) -> (hidden (B, 160), logits (B, 2))``."""

    def __init__(self, config: AasistConfig) -> None:
        super().__init__()
        n_filters, *blocks = config.filts
        enc_dim = blocks[-1][-1]
        gat_in, gat_out = config.gat_dims
        r_s, r_t, r_h, _ = config.pool_ratios
        t_s, t_t, t_h, _ = config.temperatures
        self.pos_S = nn.Parameter(torch.randn(1, N_SPECTRAL_NODES, enc_dim))
        self.master1 = nn.Parameter(torch.randn(1, 1, gat_in))
        self.master2 = nn.Parameter(torch.randn(1, 1, gat_in))
        self.conv_time = SincConv(n_filters, config.first_conv)
        self.first_bn = nn.BatchNorm2d(1)
        self.drop = nn.Dropout(0.5)
        self.drop_way = nn.Dropout(0.2)
        # six blocks, each wrapped in its own Sequential as upstream (keys encoder.<i>.0.*)
        pairs = [*blocks[:3], blocks[3], blocks[3], blocks[3]]
        self.encoder = nn.Sequential(
            *(nn.Sequential(ResidualBlock(i, o, first=n == 0)) for n, (i, o) in enumerate(pairs))
        )
        self.GAT_layer_S = GraphAttentionLayer(enc_dim, gat_in, t_s)
        self.GAT_layer_T = GraphAttentionLayer(enc_dim, gat_in, t_t)
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(gat_in, gat_out, t_h)
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(gat_out, gat_out, t_h)
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(gat_in, gat_out, t_h)
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(gat_out, gat_out, t_h)
        self.pool_S = GraphPool(r_s, gat_in)
        self.pool_T = GraphPool(r_t, gat_in)
        self.pool_hS1 = GraphPool(r_h, gat_out)
        self.pool_hT1 = GraphPool(r_h, gat_out)
        self.pool_hS2 = GraphPool(r_h, gat_out)
        self.pool_hT2 = GraphPool(r_h, gat_out)
        self.out_layer = nn.Linear(5 * gat_out, 2)

    def forward(self, waveform: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv_time(waveform.unsqueeze(1))  # (B, 70, 64472)
        x = F.max_pool2d(torch.abs(x.unsqueeze(1)), (3, 3))  # (B, 1, 23, 21490)
        e = self.encoder(F.selu(self.first_bn(x)))  # (B, C, 23, 29)
        e_s = torch.amax(torch.abs(e), dim=3).transpose(1, 2) + self.pos_S  # (B, 23, C) spectral
        e_t = torch.amax(torch.abs(e), dim=2).transpose(1, 2)  # (B, 29, C) temporal
        out_s = self.pool_S(self.GAT_layer_S(e_s))
        out_t = self.pool_T(self.GAT_layer_T(e_t))
        branches = [
            self._branch(out_t, out_s, self.master1, self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12,
                         self.pool_hT1, self.pool_hS1),
            self._branch(out_t, out_s, self.master2, self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22,
                         self.pool_hT2, self.pool_hS2),
        ]  # fmt: skip
        (t1, s1, m1), (t2, s2, m2) = ([self.drop_way(v) for v in b] for b in branches)
        t, s, m = torch.maximum(t1, t2), torch.maximum(s1, s2), torch.maximum(m1, m2)
        t_max, s_max = torch.amax(t.abs(), dim=1), torch.amax(s.abs(), dim=1)
        hidden = torch.cat((t_max, t.mean(dim=1), s_max, s.mean(dim=1), m.squeeze(1)), dim=1)
        return hidden, self.out_layer(self.drop(hidden))

    @staticmethod
    def _branch(
        out_t: Tensor,
        out_s: Tensor,
        master: Tensor,
        layer1: HtrgGraphAttentionLayer,
        layer2: HtrgGraphAttentionLayer,
        pool_t: GraphPool,
        pool_s: GraphPool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        t, s, master = layer1(out_t, out_s, master)
        s, t = pool_s(s), pool_t(t)
        t_aug, s_aug, m_aug = layer2(t, s, master)
        return t + t_aug, s + s_aug, master + m_aug


def build_aasist_l(weights: str | os.PathLike[str] | None = None, *, seed: int = 0) -> nn.Module:
    """AASIST-L (85,306 parameters) in eval mode; ``weights`` e.g. the published AASIST-L.pth."""
    return _build(AASIST_L, "AASIST-L", weights, seed)


def build_aasist(weights: str | os.PathLike[str] | None = None, *, seed: int = 0) -> nn.Module:
    """AASIST (297,866 parameters) in eval mode; ``weights`` e.g. the published AASIST.pth."""
    return _build(AASIST, "AASIST", weights, seed)


def _build(config: AasistConfig, label: str, weights: str | os.PathLike[str] | None, seed: int) -> nn.Module:
    """``weights`` is a state dict file (``module.`` prefix stripped), loaded with
    ``torch.load(weights_only=True)`` and matched strictly; any problem raises
    :class:`ModelError`. Without weights the model is initialised from ``seed`` (the global RNG
    is left untouched) and a warning is logged: parity still holds, accuracy figures mean nothing.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Aasist(config)
    if weights is None:
        logger.warning(
            "%s has seeded random weights (seed %d), not a trained checkpoint: "
            "accuracy figures will be meaningless, parity checks still hold",
            label,
            seed,
        )
    else:
        load_weights(model, weights, label)
    return model.eval()
