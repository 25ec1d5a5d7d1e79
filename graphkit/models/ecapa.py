"""ECAPA-TDNN of the Ascend ModelZoo ECAPA guide (the Joovvhan variant, seed-models.md §4.2).

Written from the architecture description, not from upstream code. The state-dict keys are
exactly those of the guide's model (228 tensors), so a guide checkpoint loads strictly; the
exported module returns the guide's two outputs, ``embedding`` (B, 192) and ``attention``
(B, T, 1536).

Non-standard points of this variant, kept on purpose because the guide's graph has them:

- Every conv is followed by ReLU *then* BatchNorm, so no BN folds into its conv.
- The Res2 split makes 8 chunks of 512 channels (a 512→4096 expansion), not 8 of 64.
- An SE-Res2 block returns only its SE output; the residuals are dense and outside the blocks.
- Attention weights are a softmax over *time*, per channel.

All convs and linears carry a bias (the §4.2 table abbreviates them; the count of 228 tensors
and 33.13 M parameters without the head need them). The speaker head
``speaker_embedding`` (weight-normed Linear 192→n_speakers, no bias) only trains; it is kept so
checkpoints load strictly and is not used by :meth:`EcapaTdnn.forward`, so it is not exported.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence

from graphkit.errors import ModelError, check_interrupted
from graphkit.models import TORCH_MISSING, ModelInfo

try:
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn
except ImportError as exc:  # torch is an optional extra
    check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
    raise ModelError(TORCH_MISSING) from exc

from graphkit.models._checkpoint import load_weights

logger = logging.getLogger("graphkit.models")

N_MELS = 80  # input features
H_CONV = 512  # channels of the frame layers
SCALE = 8  # Res2 scale: chunks per block
H_SE = 128  # SE bottleneck
H_ATT = 128  # attention bottleneck
H_EMB = 192  # embedding size
DILATIONS = (2, 3, 4)  # of the three SE-Res2 blocks
N_SPEAKERS = 1211  # VoxCeleb1 dev: the guide's training head

MODEL_INFO = ModelInfo(
    builder="graphkit.models.ecapa:build_ecapa",
    inputs={"mel": (("B", N_MELS, 200), "float32")},
    outputs=("embedding", "attention"),
    summary="ECAPA-TDNN of the Ascend ModelZoo guide (Joovvhan variant)",
)


def _conv_relu_bn(x: Tensor, conv: nn.Module, bn: nn.Module) -> Tensor:
    # y = BN(ReLU(conv(x))): the guide's order, BN after the ReLU
    return bn(F.relu(conv(x)))


class SERes2Block(nn.Module):
    """1×1 expand 512→4096, Res2 chain of 7 dilated k3 convs, 1×1 collapse, squeeze-excite."""

    def __init__(self, dilation: int) -> None:
        super().__init__()
        width = H_CONV * SCALE
        self.conv1d_expand = nn.Conv1d(H_CONV, width, 1)
        self.batchnorm_expand = nn.BatchNorm1d(width)
        self.res2conv1d_list = nn.ModuleList(
            nn.Conv1d(H_CONV, H_CONV, 3, dilation=dilation, padding=dilation) for _ in range(SCALE - 1)
        )
        self.res2batch_norm_list = nn.ModuleList(nn.BatchNorm1d(H_CONV) for _ in range(SCALE - 1))
        self.conv1d_collapse = nn.Conv1d(width, H_CONV, 1)
        self.batchnorm_collapse = nn.BatchNorm1d(H_CONV)
        self.fc_1 = nn.Linear(H_CONV, H_SE)
        self.fc_2 = nn.Linear(H_SE, H_CONV)

    def forward(self, x: Tensor) -> Tensor:
        chunks = torch.split(_conv_relu_bn(x, self.conv1d_expand, self.batchnorm_expand), H_CONV, 1)
        # y_0 = x_0;  y_1 = f_1(x_1);  y_i = f_i(x_i + y_{i-1}) for i ≥ 2
        outs = [chunks[0]]
        for i, (conv, bn) in enumerate(zip(self.res2conv1d_list, self.res2batch_norm_list), 1):
            y = chunks[i] if i == 1 else chunks[i] + outs[-1]
            outs.append(_conv_relu_bn(y, conv, bn))
        y = _conv_relu_bn(torch.cat(outs, dim=1), self.conv1d_collapse, self.batchnorm_collapse)
        # SE: s = sigmoid(fc_2(ReLU(fc_1(mean_t y)))), out = y · s (no residual inside the block)
        s = torch.sigmoid(self.fc_2(F.relu(self.fc_1(y.mean(dim=2)))))
        return y * s.unsqueeze(2)


class AttentiveStatPooling(nn.Module):
    """Per-channel attention over time; returns [μ, σ] (B, 2C) and the weights w (B, T, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1 = nn.Linear(3 * H_CONV, H_ATT)
        self.linear2 = nn.Linear(H_ATT, 3 * H_CONV)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x.transpose(1, 2)  # (B, C, T) -> (B, T, C)
        w = F.softmax(self.linear2(F.relu(self.linear1(h))), dim=1)  # softmax over time
        mu = (w * h).sum(dim=1)  # μ = Σ_t w·h
        var = (w * (h * h)).sum(dim=1) - mu * mu  # σ² = Σ_t w·h² − μ²
        sigma = var.clamp(min=1e-4).sqrt()
        return torch.cat((mu, sigma), dim=1), w


class WeightNormLinear(nn.Module):
    """Bias-free Linear with W = g · v / ‖v‖ per output row: the guide's training head.

    It holds ``weight_g`` (out, 1) and ``weight_v`` (out, in) as plain parameters, which is what
    ``torch.nn.utils.weight_norm(..., dim=0)`` saved in the guide's checkpoints.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        v = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))  # nn.Linear's default initialisation
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(v, dim=1, keepdim=True))
        self.weight_v = nn.Parameter(v)

    def forward(self, x: Tensor) -> Tensor:
        v = self.weight_v
        return F.linear(x, self.weight_g * v / torch.linalg.vector_norm(v, dim=1, keepdim=True))


class EcapaTdnn(nn.Module):
    """The export module: ``forward(mel (B, 80, T)) -> (embedding (B, 192), attention (B, T, 1536))``."""

    def __init__(self, n_speakers: int = N_SPEAKERS) -> None:
        super().__init__()
        self.conv1d_in = nn.Conv1d(N_MELS, H_CONV, 5, padding=2)
        self.batchnorm_in = nn.BatchNorm1d(H_CONV)
        self.se_res2block_1 = SERes2Block(DILATIONS[0])
        self.se_res2block_2 = SERes2Block(DILATIONS[1])
        self.se_res2block_3 = SERes2Block(DILATIONS[2])
        self.conv1d_out = nn.Conv1d(3 * H_CONV, 3 * H_CONV, 1)
        self.attentive_stat_pooling = AttentiveStatPooling()
        self.batchnorm_2 = nn.BatchNorm1d(6 * H_CONV)
        self.fc = nn.Linear(6 * H_CONV, H_EMB)
        self.batchnorm_3 = nn.BatchNorm1d(H_EMB)
        self.speaker_embedding = WeightNormLinear(H_EMB, n_speakers)  # training only

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        t = _conv_relu_bn(mel, self.conv1d_in, self.batchnorm_in)
        # dense residuals: t1 = B1(t)+t; t2 = B2(t1)+t1+t; t3 = B3(t2)+t2+t1+t
        t1 = self.se_res2block_1(t) + t
        t2 = self.se_res2block_2(t1) + t1 + t
        t3 = self.se_res2block_3(t2) + t2 + t1 + t
        h = F.relu(self.conv1d_out(torch.cat((t1, t2, t3), dim=1)))
        stats, attention = self.attentive_stat_pooling(h)
        e = self.batchnorm_3(self.fc(self.batchnorm_2(stats)))
        # e / ‖e‖₂ without an epsilon, as the guide (ReduceL2 + Div in ONNX)
        return e / torch.linalg.vector_norm(e, dim=1, keepdim=True), attention


def build_ecapa(
    weights: str | os.PathLike[str] | None = None, *, seed: int = 0, n_speakers: int = N_SPEAKERS
) -> nn.Module:
    """Build the ECAPA-TDNN export module in eval mode.

    ``weights`` is a checkpoint in the guide's format (a dict with ``model_state_dict``, whose
    ``module.`` prefix is stripped; ``step`` and ``optimizer_state_dict`` are ignored) or a bare
    state dict. It is loaded with ``torch.load(weights_only=True)`` and matched strictly; any
    problem raises :class:`ModelError`. Without weights the model is initialised from ``seed``
    (the global RNG is left untouched) and a warning is logged: parity still holds, accuracy
    figures mean nothing.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EcapaTdnn(n_speakers)
    if weights is None:
        logger.warning(
            "ECAPA-TDNN has seeded random weights (seed %d), not a trained checkpoint: "
            "accuracy figures will be meaningless, parity checks still hold",
            seed,
        )
    else:
        load_weights(model, weights, "ECAPA-TDNN", hint=_speaker_hint)
    return model.eval()


def _speaker_hint(wrong: Sequence[str], state: Mapping[str, Tensor]) -> str | None:
    """A head of another size is a checkpoint trained on other speakers: say which n_speakers."""
    if not all(k.startswith("speaker_embedding.") for k in wrong):
        return None
    n = state[wrong[0]].shape[0]
    return f"the checkpoint's head has {n} speakers: pass n_speakers={n}"
