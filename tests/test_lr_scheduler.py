"""Learning-rate schedulers against PyTorch's documented sequences.

PyTorch's ``step()`` is recursive (it updates the current ``group["lr"]``); the sequences
are checked against the documented closed forms to 1e-12, and, where PyTorch documents
the recursive update, bit for bit against that recursion written out here."""

import io
import math

import numpy as np
import pytest

import dropcore
from dropcore import optim
from dropcore.optim import lr_scheduler as S

BASE = 0.1


def make_opt(lrs=(BASE,), cls=optim.SGD, **kw):
    groups = [{"params": [dropcore.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return cls(groups, **kw)


def sequence(opt, sched, epochs, metric=None):
    """``get_last_lr()`` after construction and after each of ``epochs`` steps."""
    out = [sched.get_last_lr()[0]]
    for e in range(epochs):
        opt.step()
        sched.step() if metric is None else sched.step(metric[e])
        out.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == out[-1]
    return out


def test_step_lr():
    opt = make_opt()
    got = sequence(opt, S.StepLR(opt, step_size=3, gamma=0.5), 12)
    np.testing.assert_allclose(got, [BASE * 0.5 ** (e // 3) for e in range(13)], rtol=1e-12)
    lr, want = BASE, []
    for e in range(13):  # the recursion: multiply by gamma at every multiple of step_size
        lr = lr * 0.5 if e and e % 3 == 0 else lr
        want.append(lr)
    assert got == want


def test_multi_step_lr_counts_repeated_milestones():
    opt = make_opt()
    got = sequence(opt, S.MultiStepLR(opt, milestones=[2, 5, 5, 9], gamma=0.3), 12)
    closed = [BASE * 0.3 ** sum(m <= e for m in [2, 5, 5, 9]) for e in range(13)]
    np.testing.assert_allclose(got, closed, rtol=1e-12)


def test_exponential_lr_is_the_product_not_the_power():
    opt = make_opt()
    got = sequence(opt, S.ExponentialLR(opt, gamma=0.87), 30)
    np.testing.assert_allclose(got, [BASE * 0.87**e for e in range(31)], rtol=1e-12)
    lr, want = BASE, [BASE]
    for _ in range(30):
        lr *= 0.87
        want.append(lr)
    assert got == want  # PyTorch multiplies each epoch; lr * g * g is not always lr * g**2


def test_cosine_annealing_recursive_form_and_restart_branch():
    T, lo = 7, 0.01
    opt = make_opt()
    got = sequence(opt, S.CosineAnnealingLR(opt, T_max=T, eta_min=lo), 24)
    # Closed form, periodic past T_max (the lr comes back up, as in PyTorch).
    closed = [lo + (BASE - lo) * (1 + math.cos(math.pi * e / T)) / 2 for e in range(25)]
    np.testing.assert_allclose(got, closed, rtol=1e-10)
    # PyTorch's documented recursion, written out.
    lr, want = BASE, [BASE]
    for e in range(1, 25):
        if (e - 1 - T) % (2 * T) == 0:
            lr = lr + (BASE - lo) * (1 - math.cos(math.pi / T)) / 2
        else:
            lr = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - lo) + lo
        want.append(lr)
    assert got == want


def test_linear_and_lambda_lr():
    opt = make_opt()
    got = sequence(opt, S.LinearLR(opt, start_factor=0.25, end_factor=0.9, total_iters=6), 10)
    np.testing.assert_allclose(got, [BASE * (0.25 + 0.65 * min(e, 6) / 6) for e in range(11)], rtol=1e-12)
    opt = make_opt((0.1, 0.2))
    sched = S.LambdaLR(opt, [lambda e: 0.9**e, lambda e: 1 / (e + 1)])
    got = sequence(opt, sched, 5)
    assert got == [0.1 * 0.9**e for e in range(6)]
    assert sched.get_last_lr()[1] == 0.2 / 6
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        S.LinearLR(make_opt(), start_factor=0)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(make_opt((0.1, 0.2)), [lambda e: 1.0])


def anneal_cos(start, end, pct):
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def test_one_cycle_lr_and_momentum():
    opt = make_opt(cls=optim.SGD, lr=0.1, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=0.4, total_steps=25)
    lrs, moms = [sched.get_last_lr()[0]], [opt.param_groups[0]["momentum"]]
    for _ in range(24):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
        moms.append(opt.param_groups[0]["momentum"])
    initial, top, final = 0.4 / 25, 0.4, 0.4 / 25 / 1e4
    end1 = 0.3 * 25 - 1
    want_lr, want_m = [], []
    for e in range(25):
        if e <= end1:
            want_lr.append(anneal_cos(initial, top, e / end1))
            want_m.append(anneal_cos(0.95, 0.85, e / end1))
        else:
            pct = (e - end1) / (24 - end1)
            want_lr.append(anneal_cos(top, final, pct))
            want_m.append(anneal_cos(0.85, 0.95, pct))
    np.testing.assert_allclose(lrs, want_lr, rtol=1e-12)
    np.testing.assert_allclose(moms, want_m, rtol=1e-12)
    assert lrs[0] == pytest.approx(initial) and lrs[-1] == pytest.approx(final)
    opt.step()
    sched.step()  # step 25 == total_steps is still allowed
    with pytest.raises(ValueError, match="Tried to step 26 times. The specified number of total steps is 25"):
        sched.step()


def test_one_cycle_three_phase_linear_cycles_adams_beta1():
    opt = make_opt(cls=optim.Adam, lr=0.1, betas=(0.9, 0.99))
    sched = S.OneCycleLR(opt, max_lr=0.4, epochs=4, steps_per_epoch=5, pct_start=0.25,
                         anneal_strategy="linear", three_phase=True)
    got = sequence(opt, sched, 19)
    lo, hi, final = 0.016, 0.4, 0.016 / 1e4
    e1, e2, e3 = 0.25 * 20 - 1, 2 * 0.25 * 20 - 2, 19

    def lin(a, b, pct):
        return (b - a) * pct + a

    want = [lin(lo, hi, e / e1) if e <= e1 else lin(hi, lo, (e - e1) / (e2 - e1)) if e <= e2
            else lin(lo, final, (e - e2) / (e3 - e2)) for e in range(20)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert opt.param_groups[0]["betas"][1] == 0.99 and opt.param_groups[0]["betas"][0] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.OneCycleLR(make_opt(cls=optim.Adagrad), max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        S.OneCycleLR(make_opt(), max_lr=0.1)


def test_reduce_lr_on_plateau_patience_cooldown_threshold_min_lr():
    opt = make_opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, threshold=0.1, min_lr=0.2)
    metrics = [5, 4, 4.5, 3.9, 3.8, 3.85, 3.9, 1, 1, 1, 1, 1, 1, 1] + [1] * 10
    got = sequence(opt, sched, len(metrics), metrics)[1:]
    # Improvement means < best * 0.9. Bad epochs 3,4,5 -> halve at epoch 5; epoch 6 is cooldown;
    # 1 is an improvement at epoch 8; bad 9,10,11 -> halve at 11; cooldown 12; bad 13,14,15 -> 0.125
    # would pass min_lr, so it stops at 0.2 (and stays: a change below eps is skipped).
    want = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2] + [0.2] * 9
    assert got == want
    opt = make_opt((1.0,))
    up = S.ReduceLROnPlateau(opt, mode="max", patience=0, threshold=0.5, threshold_mode="abs")
    assert sequence(opt, up, 3, [1.0, 1.4, 2.0])[1:] == [1.0, 0.1, 0.1]
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode middle is unknown!"):
        S.ReduceLROnPlateau(opt, mode="middle")


def test_sequential_lr_switches_at_milestones():
    opt = make_opt()
    warm = S.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=4)
    cos = S.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    step = S.StepLR(opt, step_size=2, gamma=0.5)
    got = sequence(opt, S.SequentialLR(opt, [warm, cos, step], milestones=[4, 12]), 18)
    want = ([BASE * (0.1 + 0.9 * e / 4) for e in range(4)]
            + [0.001 + (BASE - 0.001) * (1 + math.cos(math.pi * (e - 4) / 10)) / 2 for e in range(4, 12)]
            + [BASE * 0.5 ** ((e - 12) // 2) for e in range(12, 19)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="one more than the number of milestone points"):
        S.SequentialLR(opt, [warm, cos], milestones=[1, 2])
    with pytest.raises(ValueError, match="same optimizer"):
        S.SequentialLR(opt, [warm, S.StepLR(make_opt(), 2)], milestones=[3])


def _resume_case(name):
    def build(opt):
        if name == "step":
            return S.StepLR(opt, 3, 0.5)
        if name == "multistep":
            return S.MultiStepLR(opt, [2, 4, 4, 7], 0.5)
        if name == "cosine":
            return S.CosineAnnealingLR(opt, 5, 0.01)
        if name == "onecycle":
            return S.OneCycleLR(opt, 0.5, total_steps=12)
        if name == "plateau":
            return S.ReduceLROnPlateau(opt, patience=1)
        return S.SequentialLR(opt, [S.LinearLR(opt, 0.5, total_iters=3), S.ExponentialLR(opt, 0.9)], [3])
    return build


@pytest.mark.parametrize("name", ["step", "multistep", "cosine", "onecycle", "plateau", "sequential"])
def test_state_dict_resume_through_save_load_gives_the_same_sequence(name):
    build = _resume_case(name)
    metrics = [3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    opt = make_opt(momentum=0.9)
    sched = build(opt)
    whole = sequence(opt, sched, 11, metrics if name == "plateau" else None)
    opt = make_opt(momentum=0.9)
    sched = build(opt)
    first = sequence(opt, sched, 5, metrics if name == "plateau" else None)
    buf = io.BytesIO()
    dropcore.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    ckpt = dropcore.load(buf)
    opt2 = make_opt(momentum=0.9)
    sched2 = build(opt2)
    opt2.load_state_dict(ckpt["opt"])
    sched2.load_state_dict(ckpt["sched"])
    rest = []
    for e in range(5, 11):
        opt2.step()
        sched2.step(metrics[e]) if name == "plateau" else sched2.step()
        rest.append(sched2.get_last_lr()[0])
    assert first + rest == whole


def test_warnings_like_pytorch():
    opt = make_opt()
    sched = S.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        sched.get_lr()
    with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)`"):
        sched.step(4)
    assert sched.get_last_lr() == [BASE * 0.1**2]  # closed form at epoch 4
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), 2)
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_opt(), 2, last_epoch=3)


def test_constant_multiplicative_polynomial():
    opt = make_opt()
    got = sequence(opt, S.ConstantLR(opt, factor=0.4, total_iters=4), 8)
    np.testing.assert_allclose(got, [BASE * (0.4 if e < 4 else 1.0) for e in range(9)], rtol=1e-12)
    opt = make_opt()
    got = sequence(opt, S.MultiplicativeLR(opt, lambda e: 0.9 if e % 2 else 0.97), 8)
    lr, want = BASE, [BASE]
    for e in range(1, 9):
        lr *= 0.9 if e % 2 else 0.97
        want.append(lr)
    assert got == want
    opt = make_opt()
    got = sequence(opt, S.PolynomialLR(opt, total_iters=9, power=2.0), 12)
    np.testing.assert_allclose(got, [BASE * (1 - min(e, 9) / 9) ** 2 for e in range(13)], rtol=1e-9, atol=1e-15)
    with pytest.raises(ValueError, match="Constant multiplicative factor"):
        S.ConstantLR(make_opt(), factor=2.0)


def test_cosine_warm_restarts_periods_and_fractional_epochs():
    opt = make_opt()
    got = sequence(opt, S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.001), 20)
    # Periods of 3, 6, 12 epochs: T_cur runs 0..2, 0..5, 0..11.
    t_cur = [*range(3), *range(6), *range(12)]
    t_i = [3] * 3 + [6] * 6 + [12] * 12
    want = [0.001 + (BASE - 0.001) * (1 + math.cos(math.pi * c / t)) / 2 for c, t in zip(t_cur, t_i)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    opt = make_opt()
    sched = S.CosineAnnealingWarmRestarts(opt, T_0=2)
    for e, frac in [(0, 0.5), (1, 0.25), (3, 0.75)]:
        sched.step(e + frac)
        t = (e + frac) % 2
        assert sched.get_last_lr()[0] == pytest.approx(BASE * (1 + math.cos(math.pi * t / 2)) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        S.CosineAnnealingWarmRestarts(make_opt(), T_0=0)


def test_chained_scheduler_composes_and_resumes():
    def build(opt):
        return S.ChainedScheduler([S.ConstantLR(opt, factor=0.5, total_iters=3), S.ExponentialLR(opt, gamma=0.9)])

    opt = make_opt()
    got = sequence(opt, build(opt), 8)
    np.testing.assert_allclose(got, [BASE * (0.5 if e < 3 else 1.0) * 0.9**e for e in range(9)], rtol=1e-12)
    opt = make_opt()
    sched = build(opt)
    first = sequence(opt, sched, 4)
    ckpt = io.BytesIO()
    dropcore.save({"o": opt.state_dict(), "s": sched.state_dict()}, ckpt)
    ckpt.seek(0)
    state = dropcore.load(ckpt)
    opt2 = make_opt()
    sched2 = build(opt2)
    opt2.load_state_dict(state["o"])
    sched2.load_state_dict(state["s"])
    assert first + sequence(opt2, sched2, 4)[1:] == got
