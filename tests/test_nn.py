"""nn modules: the notes' transcripts, gradients of every layer, BatchNorm's statistics, state_dict."""

import math

import numpy as np
import pytest

import dropcore
import dropcore.nn as nn
import dropcore.nn.functional as F

from gradcheck import gradcheck

rng = np.random.default_rng(1)
X = rng.standard_normal((5, 4))


def test_train_false_flips_dropout_training_recursively():
    dropout = nn.Dropout()
    model = nn.Sequential(nn.Linear(3, 10), dropout, nn.Linear(10, 3))
    assert dropout.training
    assert model.train(False) is model
    assert dropout.training is False and model[0].training is False
    model.train()
    assert dropout.training
    model.eval()
    assert not dropout.training


def test_eval_mode_gives_identical_outputs_twice_and_train_mode_does_not():
    dropcore.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 10), nn.Dropout(), nn.Linear(10, 3))
    x = dropcore.full((1, 3), 1.0)
    model.train()
    a, b = model(x).data, model(x).data
    assert not np.array_equal(a, b)
    model.eval()
    np.testing.assert_array_equal(model(x).data, model(x).data)
    # Eval mode is the deterministic network: dropout is the identity.
    w1, b1, w2, b2 = (p.data for p in model.parameters())
    np.testing.assert_allclose(model(x).data, (x.data @ w1.T + b1) @ w2.T + b2, rtol=1e-6)


def test_repr_is_pytorch_like():
    model = nn.Sequential(nn.Linear(3, 10), nn.Dropout(), nn.Linear(10, 3))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=3, out_features=10, bias=True)\n"
        "  (1): Dropout(p=0.5, inplace=False)\n"
        "  (2): Linear(in_features=10, out_features=3, bias=True)\n"
        ")"
    )


def test_linear_default_init_matches_pytorch_bounds():
    dropcore.manual_seed(3)
    lin = nn.Linear(400, 300)
    assert lin.weight.shape == (300, 400) and lin.bias.shape == (300,)
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) gives the same bound as the bias
    for p in (lin.weight.data, lin.bias.data):
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound
    # Uniform on [-b, b]: variance b^2 / 3.
    assert abs(lin.weight.data.var() - bound**2 / 3) < 0.05 * bound**2 / 3
    dropcore.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.data, lin.weight.data)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Linear(4, 3),
        lambda: nn.Linear(4, 3, bias=False),
        lambda: nn.Maxout(4, 3, pieces=2),
        lambda: nn.LeakyReLU(0.1),
        lambda: nn.CReLU(),
        lambda: nn.ReLU(),
        lambda: nn.BatchNorm1d(4),
        lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)),
    ],
)
def test_layer_gradients_match_finite_differences(make):
    dropcore.manual_seed(0)
    m = make().double()
    # Input gradients through the module; parameter gradients are checked through
    # the functional forms in the next test.
    gradcheck(lambda x: m(x), X + 0.3)


def test_linear_and_batchnorm_parameter_gradients():
    w = rng.standard_normal((3, 4))
    b = rng.standard_normal(3)
    gradcheck(lambda x, w, b: F.linear(x, w, b), X, w, b)
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)
    for training in (True, False):
        rm, rv = np.zeros(4), np.ones(4) * 1.5
        gradcheck(
            lambda x, g, bb: F.batch_norm(x, rm.copy(), rv.copy(), g, bb, training=training),
            X, gamma, beta,
        )
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), rng.standard_normal((6, 3, 5)))


def test_losses_gradients():
    target = np.array([0, 2, 1, 3, 3])
    gradcheck(lambda z: F.cross_entropy(z, target), X)
    gradcheck(lambda z: F.cross_entropy(z, target, reduction="sum", label_smoothing=0.1), X)
    gradcheck(lambda z: F.cross_entropy(z, target, reduction="none"), X)
    gradcheck(lambda a, b: F.mse_loss(a, b), X, rng.standard_normal(X.shape))


def test_dropout_gradient_with_replayed_generator():
    g = dropcore.Generator(9)
    gradcheck(lambda x: F.dropout(x, 0.4, generator=g), X, replay=g)
    gradcheck(lambda x: F.dropout(x, 0.4, generator=g, inverted=False), X, replay=g)
    gradcheck(lambda x: F.dropout(x, 0.4, training=False, inverted=False), X)


def test_cross_entropy_matches_numpy():
    z = rng.standard_normal((6, 4)).astype(np.float32)
    t = np.array([0, 1, 2, 3, 0, 1])
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    want = -logp[np.arange(6), t].mean()
    got = nn.CrossEntropyLoss()(dropcore.tensor(z), dropcore.tensor(t))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.item(), want, rtol=1e-6)
    with pytest.raises(ValueError, match="to match target batch_size"):  # PyTorch's message
        F.cross_entropy(dropcore.tensor(z), np.array([0, 1]))


def test_batchnorm_running_statistics_follow_pytorch():
    bn = nn.BatchNorm1d(3, momentum=0.1)
    x = rng.standard_normal((8, 3)).astype(np.float32) * 2 + 5
    y = bn(dropcore.tensor(x))
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(y.data, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean, 0.9 * 0 + 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.9 * 1 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    before = bn.running_mean.copy()
    y = bn(dropcore.tensor(x))
    np.testing.assert_allclose(y.data, (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5), rtol=1e-5)
    np.testing.assert_array_equal(bn.running_mean, before)


def test_activations_values():
    x = dropcore.tensor([[-2.0, 0.5]])
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x).data, [[-0.2, 0.5]])
    np.testing.assert_allclose(nn.CReLU()(x).data, [[0.0, 0.5, 2.0, 0.0]])
    m = nn.Maxout(2, 1, pieces=3)
    out = m(x).data
    np.testing.assert_allclose(out, (x.numpy() @ m.weight.detach().numpy().T + m.bias.detach().numpy()).max(1, keepdims=True), rtol=1e-6)


def test_state_dict_uses_pytorch_keys_and_round_trips():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    sd = model.state_dict()
    assert list(sd) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked", "3.weight", "3.bias",
    ]
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    other.load_state_dict({k: v.numpy().copy() for k, v in sd.items()})  # NumPy arrays accepted
    x = dropcore.randn(5, 3)
    model.eval(), other.eval()
    np.testing.assert_array_equal(model(x).data, other(x).data)
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict({"0.weight": np.zeros((4, 3))})
    with pytest.raises(RuntimeError, match="size mismatch"):  # PyTorch's type
        other.load_state_dict({**{k: v.data for k, v in sd.items()}, "0.bias": np.zeros(5)})


def test_parameters_zero_grad_and_double():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert len(list(model.parameters())) == 4
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model(dropcore.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model(dropcore.randn(2, 3, dtype=dropcore.float64)).dtype == np.float64


def test_dropout_module_validates_p_and_vanilla_rule():
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    m = nn.Dropout(0.25, inverted=False)
    m.eval()
    np.testing.assert_allclose(m(dropcore.ones(3)).data, [0.75, 0.75, 0.75])
    assert repr(m) == "Dropout(p=0.25, inplace=False, inverted=False)"


def test_init_functions():
    t = dropcore.zeros(200, 300)
    nn.init.xavier_uniform_(t)
    a = math.sqrt(6 / 500)
    assert np.abs(t.data).max() <= a and np.abs(t.data).max() > 0.95 * a
    nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert abs(t.data.std() - math.sqrt(2 / 300)) < 0.03 * math.sqrt(2 / 300)
    nn.init.normal_(t, 1.0, 0.01)
    assert abs(t.data.mean() - 1.0) < 1e-3
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
