"""The Emo-CLAP family's losses as pure functions of embeddings, labels and genders.

``C_a = τ_a E_a E_tᵀ`` and ``C_t = τ_t E_t E_aᵀ`` over a batch, where row ``i`` of ``E_t`` is the
text embedding of utterance ``i``'s emotion prompt. A target matrix ``M`` (1 where two utterances
share the emotion, or the gender) is normalised row-wise (``rowsum`` or ``softmax``) and each
logit matrix is fitted to it with ``KL(S(M) ‖ S(C))``, averaged over rows; the two directions are
averaged. ML-GEmo-CLAP mixes an emotion and a gender loss on the same logits; SL-GEmo-CLAP mixes
the two targets into one soft target.
"""

from __future__ import annotations

import math

import torch

TARGET_NORMS = ("rowsum", "softmax")
LOG_SCALE_INIT = math.log(1 / 0.07)
LOG_SCALE_MAX = math.log(100.0)


def same(values: torch.Tensor) -> torch.Tensor:
    """``M[i, j] = 1`` where ``values[i] == values[j]`` (labels or genders), else 0."""
    return (values[:, None] == values[None, :]).float()


def logits(audio: torch.Tensor, text: torch.Tensor, log_scale_a: torch.Tensor,
           log_scale_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C_a, C_t)`` from L2-normalised ``(B, P)`` embeddings and log-temperatures, each clamped
    to ``[0, log 100]``."""
    scale_a = log_scale_a.clamp(0.0, LOG_SCALE_MAX).exp()
    scale_t = log_scale_t.clamp(0.0, LOG_SCALE_MAX).exp()
    return scale_a * audio @ text.T, scale_t * text @ audio.T


def normalise_target(target: torch.Tensor, how: str) -> torch.Tensor:
    """Each row of a (soft) 0/1 target as a distribution: divided by its sum, or softmaxed."""
    if how == "rowsum":
        return target / target.sum(dim=1, keepdim=True)
    if how == "softmax":
        return torch.softmax(target, dim=1)
    raise ValueError(f"target normalisation must be one of {TARGET_NORMS}, got {how!r}")


def kl_rows(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``KL(P ‖ softmax(logits))`` summed over each row and averaged over rows (0 log 0 = 0)."""
    log_q = torch.log_softmax(logits, dim=1)
    return (torch.xlogy(target, target) - target * log_q).sum(dim=1).mean()


def fit(target: torch.Tensor, c_a: torch.Tensor, c_t: torch.Tensor, how: str) -> torch.Tensor:
    """``½ [KL(S(M) ‖ S(C_a)) + KL(S(M) ‖ S(C_t))]`` for a symmetric target ``M``."""
    p = normalise_target(target, how)
    return 0.5 * (kl_rows(p, c_a) + kl_rows(p, c_t))


def emo_clap(c_a: torch.Tensor, c_t: torch.Tensor, labels: torch.Tensor, how: str
             ) -> torch.Tensor:
    """Emo-CLAP: positives are the utterances that share the emotion."""
    return fit(same(labels), c_a, c_t, how)


def ml_gemo(c_a: torch.Tensor, c_t: torch.Tensor, labels: torch.Tensor, genders: torch.Tensor,
            alpha_e: float, how: str) -> torch.Tensor:
    """ML-GEmo-CLAP: ``α_e L_e + (1 − α_e) L_g``, the gender loss on the same logits."""
    return alpha_e * fit(same(labels), c_a, c_t, how) + (1 - alpha_e) * fit(
        same(genders), c_a, c_t, how)


def sl_gemo(c_a: torch.Tensor, c_t: torch.Tensor, labels: torch.Tensor, genders: torch.Tensor,
            alpha_e: float, how: str) -> torch.Tensor:
    """SL-GEmo-CLAP: one soft target ``α_e M_e + (1 − α_e) M_g``."""
    return fit(alpha_e * same(labels) + (1 - alpha_e) * same(genders), c_a, c_t, how)
