"""Optimizers against PyTorch's update rules written out independently in NumPy."""

import numpy as np
import pytest

import dropcore
from dropcore import optim

rng = np.random.default_rng(4)
P0 = rng.standard_normal(5)
GRADS = [rng.standard_normal(5) for _ in range(4)]


def run(opt_cls, **kw):
    p = dropcore.Tensor(P0.copy(), requires_grad=True)
    opt = opt_cls([p], **kw)
    for g in GRADS:
        opt.zero_grad()
        p.grad = dropcore.Tensor(g.copy())
        opt.step()
    return p.data


def sgd_reference(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p, buf = P0.copy(), None
    for g in GRADS:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def adam_reference(lr, b1, b2, eps, wd, decoupled, amsgrad=False):
    p, m, v, vmax = P0.copy(), np.zeros(5), np.zeros(5), np.zeros(5)
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2**t)
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(vhat) + eps)
    return p


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.3),
        dict(lr=0.1, momentum=0.8, weight_decay=0.01, nesterov=True),
    ],
)
def test_sgd_matches_reference(kw):
    np.testing.assert_allclose(run(optim.SGD, **kw), sgd_reference(**kw), rtol=1e-12)


@pytest.mark.parametrize("wd,amsgrad", [(0.0, False), (0.1, False), (0.0, True)])
def test_adam_matches_reference(wd, amsgrad):
    got = run(optim.Adam, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd, amsgrad=amsgrad)
    np.testing.assert_allclose(got, adam_reference(0.01, 0.9, 0.99, 1e-8, wd, False, amsgrad), rtol=1e-12)


def test_adamw_decouples_weight_decay():
    got = run(optim.AdamW, lr=0.01, weight_decay=0.1)
    np.testing.assert_allclose(got, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.1, True), rtol=1e-12)
    assert not np.allclose(got, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.1, False))


def test_first_adam_step_moves_by_lr():
    # With bias correction, step 1 moves each coordinate by ~lr * sign(grad).
    p = dropcore.Tensor(np.zeros(3), requires_grad=True)
    opt = optim.Adam([p], lr=0.5)
    p.grad = dropcore.Tensor(np.array([3.0, -0.001, 7.0]))
    opt.step()
    np.testing.assert_allclose(p.data, [-0.5, 0.5, -0.5], rtol=1e-4)


def test_float32_parameters_stay_float32_and_bad_arguments_fail():
    p = dropcore.ones(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = dropcore.ones(3)
    opt.step()
    assert p.dtype == np.float32
    with pytest.raises(ValueError):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)


def test_param_groups_and_skipping_params_without_grad():
    a = dropcore.ones(2, requires_grad=True)
    b = dropcore.ones(2, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = dropcore.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, [0.9, 0.9])
    np.testing.assert_allclose(b.data, [1.0, 1.0])
    b.grad = dropcore.ones(2)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


# ----------------------------------------------------------------------------- issue 9
def rmsprop_reference(lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    p, s, a, b = P0.copy(), np.zeros(5), np.zeros(5), np.zeros(5)
    for g in GRADS:
        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            avg = np.sqrt(s - a * a) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum:
            b = momentum * b + g / avg
            p = p - lr * b
        else:
            p = p - lr * g / avg
    return p


def adagrad_reference(lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    p, s = P0.copy(), np.full(5, initial_accumulator_value)
    for t, g in enumerate(GRADS, start=1):
        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
    return p


@pytest.mark.parametrize(
    "kw", [dict(lr=0.01), dict(lr=0.01, alpha=0.9, weight_decay=0.1), dict(lr=0.01, momentum=0.9, centered=True)]
)
def test_rmsprop_matches_reference(kw):
    np.testing.assert_allclose(run(optim.RMSprop, **kw), rmsprop_reference(**kw), rtol=1e-12)


@pytest.mark.parametrize(
    "kw", [dict(lr=0.1), dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3)]
)
def test_adagrad_matches_reference(kw):
    np.testing.assert_allclose(run(optim.Adagrad, **kw), adagrad_reference(**kw), rtol=1e-12)


@pytest.mark.parametrize(
    "cls,kw",
    [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.01, amsgrad=True)),
     (optim.AdamW, dict(lr=0.01)), (optim.RMSprop, dict(lr=0.01, centered=True)), (optim.Adagrad, dict(lr=0.1))],
)
def test_maximize_is_descent_on_the_negated_gradient(cls, kw):
    global GRADS
    saved = GRADS
    try:
        up = run(cls, maximize=True, foreach=True, **kw)
        GRADS = [-g for g in saved]
        down = run(cls, **kw)
    finally:
        GRADS = saved
    np.testing.assert_array_equal(up, down)


def _train(opt_cls, kw, steps, state=None, params=None):
    """Run ``steps`` steps of a fixed gradient sequence; optionally start from a state dict."""
    params = params or [dropcore.Tensor(P0.copy(), requires_grad=True), dropcore.Tensor(P0[:3].copy(), requires_grad=True)]
    opt = opt_cls([{"params": [params[0]]}, {"params": [params[1]], "lr": kw["lr"] / 2}], **kw)
    if state is not None:
        opt.load_state_dict(state)
    for g in GRADS[:steps]:
        params[0].grad = dropcore.Tensor(g.copy())
        params[1].grad = dropcore.Tensor(g[:3] * 2)
        opt.step()
    return opt, params


@pytest.mark.parametrize(
    "cls,kw",
    [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)), (optim.Adam, dict(lr=0.01, amsgrad=True)),
     (optim.AdamW, dict(lr=0.01)), (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
     (optim.Adagrad, dict(lr=0.1, lr_decay=0.1))],
)
def test_state_dict_round_trip_through_a_file_continues_bit_for_bit(cls, kw, tmp_path):
    full, full_params = _train(cls, kw, 4)
    half, half_params = _train(cls, kw, 2)
    dropcore.save({"opt": half.state_dict(), "params": [p.detach().numpy() for p in half_params]}, tmp_path / "ckpt")
    ckpt = dropcore.load(tmp_path / "ckpt")
    fresh = [dropcore.Tensor(a.copy(), requires_grad=True) for a in ckpt["params"]]
    opt = cls([{"params": [fresh[0]]}, {"params": [fresh[1]], "lr": 123.0}], **kw)
    opt.load_state_dict(ckpt["opt"])
    assert opt.param_groups[1]["lr"] == kw["lr"] / 2  # hyper-parameters come from the checkpoint
    for g in GRADS[2:4]:
        fresh[0].grad = dropcore.Tensor(g.copy())
        fresh[1].grad = dropcore.Tensor(g[:3] * 2)
        opt.step()
    for a, b in zip(fresh, full_params):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_layout_is_pytorchs():
    a = dropcore.ones(2, requires_grad=True)
    b = dropcore.ones(3, requires_grad=True)
    c = dropcore.ones(1, requires_grad=True)
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in (a, c):
        p.grad = dropcore.ones(p.shape[0])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sorted(sd["state"]) == [0, 2] and set(sd["state"][0]) == {"momentum_buffer"}
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["momentum"] == 0.9
    assert opt.state[a]["momentum_buffer"] is sd["state"][0]["momentum_buffer"]  # by reference, as PyTorch
    adam = optim.Adam([a], lr=0.1)
    a.grad = dropcore.ones(2)
    adam.step()
    adam.step()
    st = adam.state_dict()["state"][0]
    assert set(st) == {"step", "exp_avg", "exp_avg_sq"} and float(st["step"]) == 2.0
    assert optim.Adagrad([a]).state_dict()["state"][0]["sum"].shape == (2,)  # eager state, as PyTorch


def test_load_state_dict_casts_accepts_numpy_and_checks_shapes():
    p = dropcore.ones(2, requires_grad=True)  # float32
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    saved = {"state": {0: {"momentum_buffer": np.array([1.0, 2.0])}},
             "param_groups": [{"lr": 0.2, "momentum": 0.5, "dampening": 0.0, "weight_decay": 0.0,
                               "nesterov": False, "maximize": False, "foreach": None, "params": [0]}]}
    opt.load_state_dict(saved)
    buf = opt.state[p]["momentum_buffer"]
    assert buf.dtype == np.float32 and not np.shares_memory(buf.numpy(), saved["state"][0]["momentum_buffer"])
    p.grad = dropcore.ones(2)
    opt.step()
    np.testing.assert_allclose(p.data, 1 - 0.2 * (0.5 * np.array([1.0, 2.0]) + 1), rtol=1e-6)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict({"state": {}, "param_groups": [{**saved["param_groups"][0], "params": [0, 1]}]})


def test_add_param_group_zero_grad_closure_and_errors():
    a = dropcore.ones(2, requires_grad=True)
    b = dropcore.ones(2, requires_grad=True)
    opt = optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["momentum"] == 0.0  # defaults filled in
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (a * a).sum() + (b * 3).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 2.0 + 6.0
    np.testing.assert_allclose(a.data, [0.8, 0.8])
    np.testing.assert_allclose(b.data, [-0.5, -0.5])
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not a.grad.data.any()
    opt.zero_grad()
    assert a.grad is None


def test_step_counts_as_an_in_place_change_like_pytorch():
    # A graph that saved the weight before step() refuses a second backward afterwards.
    w = dropcore.ones(3, requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_named_parameters_are_accepted():
    net = dropcore.nn.Linear(2, 1)
    opt = optim.Adam(net.named_parameters(), lr=0.1)
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
