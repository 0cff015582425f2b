"""Losses against PyTorch's documented formulas written out in NumPy (loops over rows where
that is the plainest statement of the formula), gradients against finite differences."""

import math

import numpy as np
import pytest

import dropcore
import dropcore.nn as nn
import dropcore.nn.functional as F

from gradcheck import gradcheck

rng = np.random.default_rng(11)
Z = rng.standard_normal((6, 4))
T = np.array([0, 3, -100, 2, 1, 3])
W = np.array([0.5, 2.0, 1.0, 1.5])
PROBS = rng.dirichlet(np.ones(4), 6)


def log_softmax_rows(z):
    return np.array([[zc - math.log(sum(math.exp(v) for v in row)) for zc in row] for row in z])


def ce_reference(z, t, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """PyTorch's docs: l_n = -w_{y_n} log p_{n,y_n} (ignored targets: 0), smoothing mixes in
    eps/C * sum_c w_c (-log p_{n,c}); 'mean' divides by sum of w_{y_n} over kept targets."""
    logp = log_softmax_rows(z)
    c = z.shape[1]
    w = np.ones(c) if weight is None else weight
    per, denom = [], 0.0
    for row, y in zip(logp, t):
        if y == ignore_index:
            per.append(0.0)
            continue
        nll = -w[y] * row[y]
        smooth = -sum(w[k] * row[k] for k in range(c))
        per.append((1 - eps) * nll + eps / c * smooth)
        denom += w[y]
    per = np.array(per)
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("weight", [None, W])
def test_cross_entropy_weight_ignore_index_smoothing(reduction, eps, weight):
    got = F.cross_entropy(dropcore.tensor(Z), T, weight=weight, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(got.data, ce_reference(Z, T, weight, -100, reduction, eps), rtol=1e-12)
    gradcheck(lambda z: F.cross_entropy(z, T, weight=weight, reduction=reduction, label_smoothing=eps), Z)


def test_cross_entropy_custom_ignore_index_and_all_ignored():
    t = np.array([1, 1, 2, 0, 1, 3])
    got = F.cross_entropy(dropcore.tensor(Z), t, ignore_index=1)
    np.testing.assert_allclose(got.item(), ce_reference(Z, t, None, 1), rtol=1e-12)
    # Every target ignored: 0 / 0, which PyTorch returns as nan.
    assert math.isnan(F.cross_entropy(dropcore.tensor(Z), np.full(6, -100)).item())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_cross_entropy_probability_targets(reduction, eps):
    # Docs: l_n = -sum_c w_c q_{n,c} log p_{n,c}, q = (1 - eps) * target + eps / C; mean over N.
    logp = log_softmax_rows(Z)
    q = (1 - eps) * PROBS + eps / 4
    per = -(W * q * logp).sum(1)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    got = F.cross_entropy(dropcore.tensor(Z), PROBS, weight=W, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(got.data, want, rtol=1e-12)
    gradcheck(lambda z: F.cross_entropy(z, PROBS, weight=W, reduction=reduction, label_smoothing=eps), Z)
    # The target is differentiable too (distillation): both gradients against finite differences.
    gradcheck(lambda z, t: F.cross_entropy(z, t, weight=W, reduction=reduction, label_smoothing=eps), Z, PROBS)


def test_cross_entropy_k_dimensional_and_unbatched():
    z = rng.standard_normal((3, 4, 2, 5))
    t = rng.integers(0, 4, (3, 2, 5))
    t[0, 1, 2] = -100
    rows = np.moveaxis(z, 1, -1).reshape(-1, 4)
    want = ce_reference(rows, t.reshape(-1), W, reduction="none").reshape(3, 2, 5)
    got = F.cross_entropy(dropcore.tensor(z), t, weight=W, reduction="none")
    assert got.shape == (3, 2, 5)
    np.testing.assert_allclose(got.data, want, rtol=1e-12)
    gradcheck(lambda a: F.cross_entropy(a, t, weight=W), z)
    # (C,) logits with a scalar target.
    one = F.cross_entropy(dropcore.tensor(Z[1]), np.array(3))
    np.testing.assert_allclose(one.item(), -log_softmax_rows(Z[1:2])[0, 3], rtol=1e-12)


def test_cross_entropy_errors_like_pytorch():
    z = dropcore.tensor(Z)
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        F.cross_entropy(z, np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(6\) to match target batch_size \(2\)"):
        F.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(z, T, label_smoothing=1.5)
    with pytest.raises(ValueError, match="mena is not a valid value for reduction"):
        F.cross_entropy(z, T, reduction="mena")


def test_nll_loss_with_weights_matches_definition():
    logp = log_softmax_rows(Z)
    kept = T != -100
    want = -(W[T[kept]] * logp[np.arange(6)[kept], T[kept]]).sum() / W[T[kept]].sum()
    got = F.nll_loss(dropcore.tensor(logp), T, weight=W)
    np.testing.assert_allclose(got.item(), want, rtol=1e-12)
    gradcheck(lambda a: F.nll_loss(a, T, weight=W, reduction="sum"), logp)


def test_legacy_size_average_reduce_arguments():
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        got = F.cross_entropy(dropcore.tensor(Z), T, size_average=False)
    np.testing.assert_allclose(got.item(), ce_reference(Z, T, reduction="sum"), rtol=1e-12)


X = rng.standard_normal((4, 3))
Y = rng.standard_normal((4, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_closed_forms(reduction):
    d = X - Y
    ad = np.abs(d)
    red = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    cases = [
        (F.mse_loss, {}, d**2),
        (F.l1_loss, {}, ad),
        (F.smooth_l1_loss, {"beta": 0.5}, np.where(ad < 0.5, 0.5 * d**2 / 0.5, ad - 0.25)),
        (F.smooth_l1_loss, {"beta": 0.0}, ad),
        (F.huber_loss, {"delta": 0.7}, np.where(ad < 0.7, 0.5 * d**2, 0.7 * (ad - 0.35))),
    ]
    for fn, kw, elems in cases:
        got = fn(dropcore.tensor(X), dropcore.tensor(Y), reduction=reduction, **kw)
        np.testing.assert_allclose(got.data, red(elems), rtol=1e-12, err_msg=fn.__name__)
        gradcheck(lambda a, b: fn(a, b, reduction=reduction, **kw), X, Y)


def test_weighted_mse_mean_divides_by_weight_sum():
    w = rng.uniform(0.5, 2, X.shape)
    got = F.mse_loss(dropcore.tensor(X), Y, weight=w)
    np.testing.assert_allclose(got.item(), (w * (X - Y) ** 2).sum() / w.sum(), rtol=1e-12)


def test_regression_losses_warn_then_broadcast_like_pytorch():
    with pytest.warns(UserWarning, match="Using a target size"):
        got = F.mse_loss(dropcore.tensor(X), Y[0])
    np.testing.assert_allclose(got.item(), ((X - Y[0]) ** 2).mean(), rtol=1e-12)


P = rng.uniform(0.02, 0.98, (4, 3))
TARGET = rng.uniform(0, 1, (4, 3))
BW = rng.uniform(0.5, 2, (4, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy(reduction):
    elems = -BW * (TARGET * np.log(P) + (1 - TARGET) * np.log(1 - P))
    red = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    got = F.binary_cross_entropy(dropcore.tensor(P), TARGET, weight=BW, reduction=reduction)
    np.testing.assert_allclose(got.data, red(elems), rtol=1e-12)
    gradcheck(lambda a, b: F.binary_cross_entropy(a, b, weight=BW, reduction=reduction), P, TARGET)
    assert nn.BCELoss(weight=BW, reduction=reduction)(dropcore.tensor(P), TARGET).shape == np.shape(red(elems))


def test_binary_cross_entropy_clamps_logs_and_checks_range():
    # log(0) is clamped to -100, as PyTorch documents.
    got = F.binary_cross_entropy(dropcore.tensor([0.0, 1.0]), np.array([1.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(got.data, [100.0, 100.0])
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(dropcore.tensor([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="different to the input size"):
        F.binary_cross_entropy(dropcore.tensor([0.5, 0.5]), np.array([[1.0, 0.0]]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_pos_weight(reduction):
    x = 3 * rng.standard_normal((4, 3))
    pw = np.array([1.0, 2.0, 0.5])
    sig = 1 / (1 + np.exp(-x))
    elems = -BW * (pw * TARGET * np.log(sig) + (1 - TARGET) * np.log(1 - sig))
    red = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    got = F.binary_cross_entropy_with_logits(dropcore.tensor(x), TARGET, weight=BW, reduction=reduction, pos_weight=pw)
    np.testing.assert_allclose(got.data, red(elems), rtol=1e-11)
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, BW, reduction=reduction, pos_weight=pw), x, TARGET)


def test_bce_with_logits_is_stable_for_large_logits():
    got = F.binary_cross_entropy_with_logits(dropcore.tensor([800.0, -800.0]), np.array([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(got.data, [800.0, 800.0])
    with pytest.raises(ValueError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(dropcore.tensor([1.0]), np.array([1.0, 0.0]))


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    logq = np.log(PROBS)
    target = PROBS[::-1].copy()
    t = np.log(target) if log_target else target
    elems = target * (np.log(target) - logq)
    want = {"batchmean": elems.sum() / 6, "sum": elems.sum(), "none": elems}[reduction]
    got = F.kl_div(dropcore.tensor(logq), t, reduction=reduction, log_target=log_target)
    np.testing.assert_allclose(got.data, want, rtol=1e-12)
    gradcheck(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target), logq, t)


def test_kl_div_mean_warns_and_zero_targets_contribute_zero():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        got = F.kl_div(dropcore.tensor(np.log([[0.5, 0.5]])), np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(got.item(), (1.0 * (0 - np.log(0.5)) + 0) / 2)


def test_one_hot_like_pytorch():
    got = F.one_hot(np.array([[0, 2], [1, 0]]))
    assert got.dtype == np.int64 and got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got.data, np.eye(3, dtype=np.int64)[[[0, 2], [1, 0]]])
    assert F.one_hot(dropcore.tensor(np.array([1])), num_classes=5).tolist() == [[0, 1, 0, 0, 0]]
    with pytest.raises(RuntimeError, match="Class values must be smaller than num_classes"):
        F.one_hot(np.array([3]), 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(np.array([-1]))
    with pytest.raises(RuntimeError, match="index tensor"):
        F.one_hot(np.array([1.0]))


def test_loss_modules_forward_their_arguments():
    z = dropcore.tensor(Z)
    np.testing.assert_allclose(nn.CrossEntropyLoss(weight=W, label_smoothing=0.1)(z, T).item(),
                               ce_reference(Z, T, W, eps=0.1), rtol=1e-12)
    np.testing.assert_allclose(nn.CrossEntropyLoss(ignore_index=3, reduction="sum")(z, np.array([3, 0, 1, 2, 3, 3])).item(),
                               ce_reference(Z, np.array([3, 0, 1, 2, 3, 3]), None, 3, "sum"), rtol=1e-12)
    assert nn.L1Loss(reduction="sum")(dropcore.tensor(X), Y).item() == pytest.approx(np.abs(X - Y).sum(), rel=1e-12)
    assert nn.HuberLoss(delta=0.5)(dropcore.tensor(X), Y).item() == pytest.approx(F.huber_loss(dropcore.tensor(X), Y, delta=0.5).item())
    assert nn.SmoothL1Loss(beta=2.0)(dropcore.tensor(X), Y).item() == pytest.approx(F.smooth_l1_loss(dropcore.tensor(X), Y, beta=2.0).item())
    assert nn.KLDivLoss(reduction="batchmean", log_target=True)(dropcore.tensor(np.log(PROBS)), np.log(PROBS)).item() == 0.0
    m = nn.BCEWithLogitsLoss(pos_weight=np.array([1.0, 2.0, 0.5]))
    assert "pos_weight" in m.state_dict() and "weight" not in m.state_dict()


def test_float32_losses_stay_float32():
    z = dropcore.tensor(Z.astype(np.float32), requires_grad=True)
    for loss in (F.cross_entropy(z, T, weight=W), F.cross_entropy(z, PROBS.astype(np.float32)),
                 F.mse_loss(z, Z.astype(np.float32)), F.binary_cross_entropy_with_logits(z, np.ones((6, 4), np.float32))):
        assert loss.dtype == np.float32
        loss.backward()
        assert z.grad.dtype == np.float32
