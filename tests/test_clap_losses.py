"""The Emo-CLAP family's losses against values computed by hand on a 4 × 4 batch."""

from __future__ import annotations

import math

import pytest
import torch
from serbench_clap import losses

# unit embeddings whose dot products are 0 or 1
AUDIO = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
TEXT = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
LABELS = torch.tensor([0, 0, 1, 1])
GENDERS = torch.tensor([0, 1, 1, 1])
LOG_A, LOG_T = torch.tensor(math.log(2.0)), torch.tensor(math.log(3.0))  # scales 2 and 3


def _logits() -> tuple[torch.Tensor, torch.Tensor]:
    return losses.logits(AUDIO, TEXT, LOG_A, LOG_T)


def _kl_by_hand(logits: list[list[float]], target: list[list[float]], norm: str) -> float:
    """Σ_j p log(p / q) per row, averaged over rows, in plain Python."""
    total = 0.0
    for row, m in zip(logits, target, strict=True):
        if norm == "rowsum":
            p = [v / sum(m) for v in m]
        else:
            p = [math.exp(v) / sum(math.exp(u) for u in m) for v in m]
        z = sum(math.exp(v) for v in row)
        pairs = zip(p, row, strict=True)
        total += sum(pj * math.log(pj / (math.exp(cj) / z)) for pj, cj in pairs if pj > 0)
    return total / len(logits)


C_A = [[2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0], [2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0]]
C_T = [[3.0, 0.0, 3.0, 0.0], [3.0, 0.0, 3.0, 0.0], [0.0, 3.0, 0.0, 3.0], [0.0, 3.0, 0.0, 3.0]]
M_E = [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
M_G = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]]


def _by_hand(target: list[list[float]], norm: str) -> float:
    return 0.5 * (_kl_by_hand(C_A, target, norm) + _kl_by_hand(C_T, target, norm))


def test_logits_and_targets_are_the_matrices_written_out() -> None:
    c_a, c_t = _logits()
    torch.testing.assert_close(c_a, torch.tensor(C_A))
    torch.testing.assert_close(c_t, torch.tensor(C_T))
    assert losses.same(LABELS).tolist() == M_E
    assert losses.same(GENDERS).tolist() == M_G


def test_emo_clap_rowsum_has_a_closed_form() -> None:
    # C_a rows: KL = log(1 + e^-2) for the two rows whose positives score 2, log(1 + e^2) for the
    # two that score 0; C_t rows all give ½ log(1 + e^-3) + ½ log(1 + e^3).
    expected = 0.5 * ((1 + math.log1p(math.exp(-2))) + (1.5 + math.log1p(math.exp(-3))))
    c_a, c_t = _logits()
    got = losses.emo_clap(c_a, c_t, LABELS, "rowsum").item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert _by_hand(M_E, "rowsum") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("norm", ["rowsum", "softmax"])
def test_each_loss_equals_the_hand_computation(norm: str) -> None:
    c_a, c_t = _logits()
    emo, gender = _by_hand(M_E, norm), _by_hand(M_G, norm)
    soft = [[0.9 * e + 0.1 * g for e, g in zip(re, rg, strict=True)]
            for re, rg in zip(M_E, M_G, strict=True)]
    assert losses.emo_clap(c_a, c_t, LABELS, norm).item() == pytest.approx(emo, rel=1e-6)
    assert losses.ml_gemo(c_a, c_t, LABELS, GENDERS, 0.8, norm).item() == pytest.approx(
        0.8 * emo + 0.2 * gender, rel=1e-6)
    assert losses.sl_gemo(c_a, c_t, LABELS, GENDERS, 0.9, norm).item() == pytest.approx(
        _by_hand(soft, norm), rel=1e-6)
    assert abs(emo - gender) > 0.1  # the gender term really changes the loss


@pytest.mark.parametrize("norm", ["rowsum", "softmax"])
def test_alpha_one_gives_emo_clap_and_alpha_zero_the_gender_loss(norm: str) -> None:
    c_a, c_t = _logits()
    emo = losses.emo_clap(c_a, c_t, LABELS, norm)
    assert losses.ml_gemo(c_a, c_t, LABELS, GENDERS, 1.0, norm).item() == emo.item()
    assert losses.sl_gemo(c_a, c_t, LABELS, GENDERS, 1.0, norm).item() == emo.item()
    gender = losses.emo_clap(c_a, c_t, GENDERS, norm)  # the same loss with gender as the label
    assert losses.ml_gemo(c_a, c_t, LABELS, GENDERS, 0.0, norm).item() == gender.item()
    assert losses.sl_gemo(c_a, c_t, LABELS, GENDERS, 0.0, norm).item() == gender.item()


def test_softmax_target_of_a_binary_row_is_nearly_uniform() -> None:
    row = losses.normalise_target(torch.tensor([[1.0, 1.0, 0.0, 0.0]]), "softmax")[0]
    e = math.e
    assert row.tolist() == pytest.approx([e / (2 * e + 2)] * 2 + [1 / (2 * e + 2)] * 2)
    rowsum = losses.normalise_target(torch.tensor([[1.0, 1.0, 0.0, 0.0]]), "rowsum")[0]
    assert rowsum.tolist() == [0.5, 0.5, 0.0, 0.0]


def test_logit_scales_are_clamped_to_zero_and_log_100() -> None:
    big, negative = torch.tensor(10.0), torch.tensor(-3.0)
    c_a, c_t = losses.logits(AUDIO, TEXT, big, negative)
    assert c_a.max().item() == pytest.approx(100.0)
    assert c_t.max().item() == pytest.approx(1.0)
    assert losses.LOG_SCALE_INIT == pytest.approx(math.log(1 / 0.07))
