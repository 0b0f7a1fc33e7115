"""Preference losses against their closed forms (TRL equality is in test_trl_equality.py)."""

import math

import pytest
import torch

from superalign.learner.losses import dpo_loss, ipo_loss, preference_loss, robust_dpo_loss

PI_C = torch.tensor([-10.0, -20.0, -5.0])
PI_R = torch.tensor([-12.0, -15.0, -5.0])
REF_C = torch.tensor([-11.0, -18.0, -6.0])
REF_R = torch.tensor([-11.0, -18.0, -4.0])
N_C, N_R = torch.tensor([5, 10, 2]), torch.tensor([4, 8, 3])


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_cdpo_matches_its_closed_form():
    beta, eps = 0.5, 0.2
    got = dpo_loss(PI_C, PI_R, REF_C, REF_R, beta, eps)
    for i in range(3):
        x = beta * ((PI_C[i] - REF_C[i]) - (PI_R[i] - REF_R[i])).item()
        want = -(1 - eps) * math.log(_sig(x)) - eps * math.log(_sig(-x))
        assert got[i].item() == pytest.approx(want, abs=1e-6)
    # cDPO's optimum is a finite margin: log((1-eps)/eps); plain DPO keeps pushing.
    x_star = torch.tensor([math.log(0.8 / 0.2) / beta], requires_grad=True)
    dpo_loss(x_star, torch.zeros(1), torch.zeros(1), torch.zeros(1), beta, eps).sum().backward()
    assert abs(x_star.grad.item()) < 1e-6


def test_robust_reduces_to_dpo_at_zero_flip_rate_and_is_unbiased():
    beta = 0.1
    assert torch.equal(robust_dpo_loss(PI_C, PI_R, REF_C, REF_R, beta, 0.0), dpo_loss(PI_C, PI_R, REF_C, REF_R, beta))
    # Unbiased: the expectation over labels flipped with prob eps equals the clean DPO loss.
    eps = 0.3
    clean = dpo_loss(PI_C, PI_R, REF_C, REF_R, beta)
    flipped_pair = robust_dpo_loss(PI_R, PI_C, REF_R, REF_C, beta, eps)
    expected = (1 - eps) * robust_dpo_loss(PI_C, PI_R, REF_C, REF_R, beta, eps) + eps * flipped_pair
    assert torch.allclose(expected, clean, atol=1e-6)


def test_ipo_uses_length_normalised_log_ratios():
    beta = 0.1
    got = ipo_loss(PI_C, PI_R, REF_C, REF_R, N_C.float(), N_R.float(), beta)
    i = 1
    want = ((PI_C[i] - REF_C[i]).item() / 10 - (PI_R[i] - REF_R[i]).item() / 8 - 1 / (2 * beta)) ** 2
    assert got[i].item() == pytest.approx(want, rel=1e-6)
    assert torch.allclose(preference_loss("ipo", PI_C, PI_R, REF_C, REF_R, N_C, N_R, beta), got)


def test_unknown_loss_type_is_refused():
    with pytest.raises(ValueError, match="sigmoid, ipo, robust"):
        preference_loss("hinge", PI_C, PI_R, REF_C, REF_R, N_C, N_R, 0.1)
