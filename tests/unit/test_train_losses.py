"""Cox partial-likelihood loss, focal loss and class weights (oncoflow.train.losses)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import CoxPHFitter
from torch.nn import functional as F  # noqa: N812

from oncoflow.errors import ModelError
from oncoflow.train.losses import class_weights, cox_partial_likelihood_loss, focal_loss

# ---------------------------------------------------------------------------------------------
# reference implementations (plain double loops)


def ref_loglik(risk, time, event, ties):
    """Cox partial log-likelihood by explicit loops over distinct event times."""
    risk, time, event = (np.asarray(a, dtype=np.float64) for a in (risk, time, event))
    ll = 0.0
    for t in np.unique(time[event == 1]):
        tied = [i for i in range(len(time)) if time[i] == t and event[i] == 1]
        at_risk = [j for j in range(len(time)) if time[j] >= t]
        s_r = sum(np.exp(risk[j]) for j in at_risk)
        s_d = sum(np.exp(risk[i]) for i in tied)
        d = len(tied)
        for i in tied:
            ll += risk[i]
        for ell in range(d):
            ll -= np.log(s_r - (ell / d if ties == "efron" else 0.0) * s_d)
    return ll


def loss64(risk, time, event, ties="efron"):
    return cox_partial_likelihood_loss(
        torch.as_tensor(risk, dtype=torch.float64),
        torch.as_tensor(time, dtype=torch.float64),
        torch.as_tensor(event, dtype=torch.float64),
        ties=ties,
    )


@pytest.fixture
def tied_data():
    """Small data set with tied event times, ties between events and censorings."""
    rng = np.random.default_rng(0)
    n = 40
    x = rng.normal(size=n)
    time = rng.integers(1, 9, size=n).astype(float)  # many ties
    event = (rng.random(n) < 0.7).astype(float)
    return x, time, event


# ---------------------------------------------------------------------------------------------
# Cox loss


def test_efron_matches_lifelines(tied_data):
    x, time, event = tied_data
    assert len(np.unique(time[event == 1])) < int(event.sum())  # really has tied events
    df = pd.DataFrame({"x": x, "T": time, "E": event})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter(penalizer=0.0).fit(df, "T", "E")
    beta = float(cph.params_["x"])
    assert abs(beta) > 1e-3
    loss = loss64(beta * x, time, event, "efron")
    assert -(loss.item() * event.sum()) == pytest.approx(cph.log_likelihood_, rel=1e-6)
    # Breslow differs from lifelines' (Efron) value when there are ties.
    breslow = loss64(beta * x, time, event, "breslow")
    assert -(breslow.item() * event.sum()) != pytest.approx(cph.log_likelihood_, rel=1e-6)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_matches_loop_reference(tied_data, ties):
    x, time, event = tied_data
    risk = 0.8 * x + 0.3
    loss = loss64(risk, time, event, ties)
    assert -(loss.item() * event.sum()) == pytest.approx(
        ref_loglik(risk, time, event, ties), rel=1e-10
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_matches_loop_reference_random(seed, ties):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    risk = rng.normal(scale=2.0, size=n)
    time = rng.integers(1, 6, size=n).astype(float)
    event = (rng.random(n) < 0.6).astype(float)
    event[0] = 1.0
    loss = loss64(risk, time, event, ties)
    assert -(loss.item() * event.sum()) == pytest.approx(
        ref_loglik(risk, time, event, ties), rel=1e-10
    )


def test_no_ties_breslow_equals_efron():
    rng = np.random.default_rng(1)
    n = 30
    risk = rng.normal(size=n)
    time = rng.permutation(n).astype(float) + 1.0
    event = (rng.random(n) < 0.5).astype(float)
    event[0] = 1.0
    b = loss64(risk, time, event, "breslow")
    e = loss64(risk, time, event, "efron")
    assert b.item() == pytest.approx(e.item(), rel=1e-12)
    assert -(b.item() * event.sum()) == pytest.approx(
        ref_loglik(risk, time, event, "breslow"), rel=1e-10
    )


def test_ties_make_breslow_and_efron_differ(tied_data):
    x, time, event = tied_data
    assert loss64(x, time, event, "breslow").item() > loss64(x, time, event, "efron").item()


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_batch_without_events_is_zero_with_zero_grads(ties):
    risk = torch.randn(8, requires_grad=True)
    time = torch.arange(1.0, 9.0)
    event = torch.zeros(8)
    loss = cox_partial_likelihood_loss(risk, time, event, ties=ties)
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert risk.grad is not None
    assert torch.equal(risk.grad, torch.zeros(8))


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_gradcheck(ties):
    gen = torch.Generator().manual_seed(3)
    risk = torch.randn(12, dtype=torch.float64, generator=gen, requires_grad=True)
    time = torch.tensor([1, 2, 2, 2, 3, 3, 4, 5, 5, 6, 7, 7], dtype=torch.float64)
    event = torch.tensor([1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda r: cox_partial_likelihood_loss(r, time, event, ties=ties), (risk,)
    )


def test_gradient_matches_analytic_breslow():
    # d(-ll)/d eta_k = -delta_k + sum_{j: event, t_j <= t_k} exp(eta_k) / S_R(t_j)
    rng = np.random.default_rng(4)
    n = 10
    risk_np = rng.normal(size=n)
    time = rng.integers(1, 5, size=n).astype(float)
    event = (rng.random(n) < 0.7).astype(float)
    event[0] = 1.0
    risk = torch.tensor(risk_np, requires_grad=True)
    loss = loss64(risk, time, event, "breslow")
    loss.backward()
    expected = -event.copy()
    for j in range(n):
        if event[j]:
            s_r = np.exp(risk_np[time >= time[j]]).sum()
            expected += np.where(time >= time[j], np.exp(risk_np) / s_r, 0.0)
    np.testing.assert_allclose(risk.grad.numpy(), expected / event.sum(), rtol=1e-10)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_invariant_to_constant_shift(tied_data, ties):
    x, time, event = tied_data
    base = loss64(x, time, event, ties).item()
    assert loss64(x + 7.5, time, event, ties).item() == pytest.approx(base, rel=1e-10)
    assert loss64(x - 300.0, time, event, ties).item() == pytest.approx(base, rel=1e-10)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_invariant_to_row_order(tied_data, ties):
    x, time, event = tied_data
    perm = np.random.default_rng(5).permutation(len(x))
    assert loss64(x[perm], time[perm], event[perm], ties).item() == pytest.approx(
        loss64(x, time, event, ties).item(), rel=1e-12
    )


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_large_scores_float32_stable(tied_data, ties):
    x, time, event = tied_data
    risk32 = torch.tensor(x * 50.0 + 1000.0, dtype=torch.float32, requires_grad=True)
    loss = cox_partial_likelihood_loss(
        risk32, torch.tensor(time, dtype=torch.float32), torch.tensor(event), ties=ties
    )
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(risk32.grad).all()
    assert loss.item() == pytest.approx(loss64(x * 50.0, time, event, ties).item(), rel=1e-4)


def test_bool_and_float_events_agree(tied_data):
    x, time, event = tied_data
    r, t = torch.tensor(x), torch.tensor(time)
    a = cox_partial_likelihood_loss(r, t, torch.tensor(event))
    b = cox_partial_likelihood_loss(r, t, torch.tensor(event).bool())
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_batch_of_256_runs():
    gen = torch.Generator().manual_seed(6)
    risk = torch.randn(256, generator=gen, requires_grad=True)
    time = torch.randint(1, 50, (256,), generator=gen).float()
    event = (torch.rand(256, generator=gen) < 0.6).float()
    loss = cox_partial_likelihood_loss(risk, time, event)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(risk.grad).all()


def test_cox_errors():
    r, t, e = torch.zeros(4), torch.ones(4), torch.ones(4)
    with pytest.raises(ModelError, match="different lengths"):
        cox_partial_likelihood_loss(r, torch.ones(3), e)
    with pytest.raises(ModelError, match="different lengths"):
        cox_partial_likelihood_loss(r, t, torch.ones(5))
    with pytest.raises(ModelError, match="unknown ties"):
        cox_partial_likelihood_loss(r, t, e, ties="exact")
    with pytest.raises(ModelError, match="one-dimensional"):
        cox_partial_likelihood_loss(r[:, None], t, e)
    with pytest.raises(ModelError, match="0 or 1"):
        cox_partial_likelihood_loss(r, t, torch.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ModelError, match="NaN"):
        cox_partial_likelihood_loss(r, torch.tensor([1.0, float("nan"), 2.0, 3.0]), e)


# ---------------------------------------------------------------------------------------------
# focal loss


def test_focal_gamma0_equals_cross_entropy():
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 4, (20,), generator=gen)
    assert focal_loss(logits, target, gamma=0.0).item() == pytest.approx(
        F.cross_entropy(logits, target).item(), rel=1e-12
    )


def test_focal_smaller_than_ce_on_confident_correct():
    logits = torch.tensor([[4.0, 0.0, -1.0], [-2.0, 3.0, 0.0], [0.0, 0.5, 5.0]])
    target = torch.tensor([0, 1, 2])
    ce = F.cross_entropy(logits, target).item()
    fl = focal_loss(logits, target, gamma=2.0).item()
    assert 0.0 < fl < 0.1 * ce


def test_focal_matches_formula():
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (10,), generator=gen)
    alpha = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    p = torch.softmax(logits, 1)[torch.arange(10), target]
    expected = (-alpha[target] * (1 - p) ** 1.5 * torch.log(p)).mean()
    assert focal_loss(logits, target, gamma=1.5, alpha=alpha).item() == pytest.approx(
        expected.item(), rel=1e-12
    )


def test_focal_alpha_weights_apply():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.2]], dtype=torch.float64)
    target = torch.tensor([0, 1, 1])
    base = focal_loss(logits, target, gamma=2.0)
    assert focal_loss(logits, target, gamma=2.0, alpha=torch.full((2,), 3.0)).item() == (
        pytest.approx(3.0 * base.item(), rel=1e-12)
    )
    # zero weight for class 1 keeps only the class-0 sample
    only0 = focal_loss(logits, target, gamma=2.0, alpha=torch.tensor([1.0, 0.0]))
    single = focal_loss(logits[:1], target[:1], gamma=2.0)
    assert only0.item() == pytest.approx(single.item() / 3.0, rel=1e-12)


def test_focal_backward_finite_on_perfect_prediction():
    logits = torch.tensor([[100.0, -100.0], [-100.0, 100.0]], requires_grad=True)
    loss = focal_loss(logits, torch.tensor([0, 1]), gamma=2.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


def test_focal_errors():
    logits = torch.zeros(3, 2)
    with pytest.raises(ModelError, match="target must have shape"):
        focal_loss(logits, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ModelError, match=r"\[0, 2\)"):
        focal_loss(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ModelError, match="alpha"):
        focal_loss(logits, torch.tensor([0, 1, 1]), alpha=torch.ones(3))
    with pytest.raises(ModelError, match="gamma"):
        focal_loss(logits, torch.tensor([0, 1, 1]), gamma=-1.0)
    with pytest.raises(ModelError, match="integer"):
        focal_loss(logits, torch.tensor([0.0, 1.0, 1.0]))


# ---------------------------------------------------------------------------------------------
# class weights


def test_class_weights_values():
    labels = np.array([0, 0, 0, 1, 2, 2])  # N=6, K=3, counts 3,1,2
    w = class_weights(labels, 3)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([6 / 9, 6 / 3, 6 / 6]))


def test_class_weights_absent_class_and_tensor_input():
    w = class_weights(torch.tensor([0, 0, 1, 1]), 3)  # class 2 absent, N=4, K=3
    torch.testing.assert_close(w, torch.tensor([4 / 6, 4 / 6, 1.0]))
    assert torch.isfinite(w).all()


def test_class_weights_balanced_are_one():
    torch.testing.assert_close(class_weights(np.array([0, 1, 2, 3] * 5), 4), torch.ones(4))


def test_class_weights_errors():
    with pytest.raises(ModelError, match="lie in"):
        class_weights(np.array([0, 3]), 3)
    with pytest.raises(ModelError, match="lie in"):
        class_weights(np.array([-1, 0]), 3)
    with pytest.raises(ModelError, match="integer"):
        class_weights(np.array([0.5, 1.0]), 3)
    with pytest.raises(ModelError, match="n_classes"):
        class_weights(np.array([0]), 0)
