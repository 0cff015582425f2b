"""MC-dropout prediction: probabilities, uncertainty identities, determinism, modes,
and the word layout: input r in pass t reads words that depend on (seed, r, t) only,
so a batched run is replayed input by input and pass by pass, and a row slice of the
batch predicted alone gives the same bits as the whole batch."""

import numpy as np
import pytest

import dropcore
import dropcore.nn as nn
from dropcore import mc

H = 16  # hidden width of the test models


def make_model(p=0.5, bn=False):
    dropcore.manual_seed(0)
    layers = [nn.Linear(6, H)]
    if bn:
        layers.append(nn.BatchNorm1d(H))
    layers += [nn.ReLU(), nn.Dropout(p), nn.Linear(H, 4)]
    return nn.Sequential(*layers)


def make_two_dropout_model():
    dropcore.manual_seed(1)
    return nn.Sequential(nn.Linear(6, H), nn.ReLU(), nn.Dropout(0.3), nn.Linear(H, 8), nn.ReLU(),
                         nn.Dropout(0.6), nn.Linear(8, 3))


X = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)


def words(n):
    """Words an element-dropout call on n elements draws (SPEC §2), measured."""
    g = dropcore.Generator(0)
    dropcore.nn.functional.dropout(np.ones(n, np.float32), 0.5, generator=g)
    return g.offset


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def replay_pass(model, x, starts):
    """One stochastic pass, dropout layer k reading words from ``starts[k]`` (default stream)."""
    h = dropcore.tensor(x)
    k = 0
    with dropcore.no_grad():
        for layer in model:
            if isinstance(layer, nn.Dropout):
                dropcore.default_generator.set_state(starts[k])
                k += 1
                layer.train()
            h = layer(h)
    return softmax(h.detach().numpy())


def test_shapes_and_probability_identities():
    r = mc.predict(make_model(), X, samples=25, generator=dropcore.Generator(1), return_samples=True)
    assert r.mean.shape == (9, 4) and r.variance.shape == (9, 4)
    assert r.entropy.shape == (9,) and r.mutual_information.shape == (9,)
    assert r.samples.shape == (25, 9, 4)
    np.testing.assert_allclose(r.mean.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(r.samples.sum(2), 1, rtol=1e-5)
    assert (r.variance >= 0).all()
    assert (r.mutual_information >= 0).all() and (r.mutual_information <= r.entropy + 1e-6).all()
    assert (r.entropy <= np.log(4) + 1e-6).all()
    assert r.mutual_information.max() > 1e-3  # dropout makes the passes differ
    np.testing.assert_array_equal(r.prediction, r.mean.argmax(1))


def test_statistics_match_their_definitions_on_the_samples():
    r = mc.predict(make_model(), X, samples=12, generator=dropcore.Generator(5), return_samples=True)
    s = r.samples.astype(np.float64)
    mean = s.mean(0)
    np.testing.assert_allclose(r.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(r.variance, ((s - mean) ** 2).mean(0), rtol=1e-5, atol=1e-9)
    h_mean = -(mean * np.log(mean)).sum(1)
    h_each = -(s * np.log(s)).sum(2).mean(0)
    np.testing.assert_allclose(r.entropy, h_mean, rtol=1e-5)
    np.testing.assert_allclose(r.mutual_information, h_mean - h_each, atol=1e-5)


def test_no_dropout_means_no_model_uncertainty():
    model = make_model()
    plain = nn.Sequential(model[0], model[1], model[3])
    r = mc.predict(plain, X, samples=10)
    np.testing.assert_allclose(r.variance, 0, atol=1e-12)
    np.testing.assert_allclose(r.mutual_information, 0, atol=1e-6)
    plain.eval()
    with dropcore.no_grad():
        np.testing.assert_allclose(r.mean, softmax(plain(dropcore.tensor(X)).numpy()), rtol=1e-5)


def test_deterministic_given_the_generator_and_it_advances():
    model = make_model()
    dropcore.manual_seed(123)
    before = dropcore.default_generator.get_state()
    g1, g2 = dropcore.Generator(7), dropcore.Generator(7)
    a = mc.predict(model, X, samples=8, generator=g1)
    b = mc.predict(model, X, samples=8, generator=g2)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert g1.offset == 9 * words(8 * H)  # T passes x H units per input
    assert dropcore.default_generator.get_state() == before  # the global stream is untouched
    c = mc.predict(model, X, samples=8, generator=g1)
    assert not np.array_equal(a.mean, c.mean)


def test_without_a_generator_the_default_stream_is_used():
    model = make_model()
    dropcore.manual_seed(3)
    a = mc.predict(model, X, samples=4)
    assert dropcore.default_generator.get_state() == (3, 9 * words(4 * H))
    b = mc.predict(model, X, samples=4, generator=dropcore.Generator(3))
    np.testing.assert_array_equal(a.mean, b.mean)


def test_a_module_generator_is_overridden_by_the_given_one():
    model = make_model()
    model[2].generator = own = dropcore.Generator(99)
    a = mc.predict(model, X, samples=4, generator=dropcore.Generator(3))
    assert model[2].generator is own and own.offset == 0
    model[2].generator = None
    b = mc.predict(model, X, samples=4, generator=dropcore.Generator(3))
    np.testing.assert_array_equal(a.mean, b.mean)


def test_batched_passes_equal_a_per_input_per_pass_replay_on_the_same_words():
    """Input r, pass t of dropout layer k reads words base_k + (r*T + t) * words(F_k);
    layer 2's range follows layer 1's over the whole batch."""
    model = make_two_dropout_model()
    T, B, seed = 5, len(X), 3
    r = mc.predict(model, X, samples=T, generator=dropcore.Generator(seed), return_samples=True)
    base2 = B * T * words(H)
    for i in range(B):
        for t in range(T):
            k = i * T + t
            ref = replay_pass(model, X[i : i + 1], [(seed, k * words(H)), (seed, base2 + k * words(8))])
            np.testing.assert_allclose(r.samples[t, i], ref[0], rtol=1e-5, atol=1e-7)
    assert not np.allclose(r.samples[0], r.samples[1])  # the samples really differ


@pytest.mark.parametrize("batch_size", [1, 3, 8, 20, 45])
def test_masks_do_not_depend_on_batch_size(batch_size):
    """Forwards of other sizes (inputs per forward, passes split) draw the same masks;
    only the BLAS's summation order may differ with the GEMM shapes."""
    model = make_two_dropout_model()
    g = dropcore.Generator(2)
    whole = mc.predict(model, X, samples=4, generator=dropcore.Generator(2), return_samples=True)
    r = mc.predict(model, X, samples=4, generator=g, batch_size=batch_size, return_samples=True)
    np.testing.assert_allclose(r.samples, whole.samples, rtol=1e-5, atol=1e-7)
    assert g.offset == len(X) * (words(4 * H) + words(4 * 8))


@pytest.mark.parametrize("width,samples", [(H, 4), (7, 5), (7, 1)])
def test_a_row_slice_predicted_alone_is_bit_identical(width, samples):
    """What dropcore.dask does per chunk: plan the whole batch, predict any rows alone.
    An odd width with an odd number of samples exercises the discarded extra pass that
    keeps every input on whole words (half-word masks, SPEC §2)."""
    dropcore.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Dropout(0.4), nn.Linear(width, 3))
    x = np.random.default_rng(5).standard_normal((23, 6)).astype(np.float32)
    for batch_size in (None, 3 * samples + 1):
        g = dropcore.Generator(9)
        plan = mc._plan(model, x, len(x), samples, batch_size, g)
        assert g.offset == plan.words
        whole = mc._predict_rows(model, x, 0, plan, return_samples=True)
        ref = mc.predict(model, x, samples, batch_size, dropcore.Generator(9), return_samples=True)
        np.testing.assert_array_equal(whole.samples, ref.samples)
        for lo, hi in [(0, 1), (3, 4), (5, 17), (17, 23), (0, 23), (22, 23)]:
            part = mc._predict_rows(model, x[lo:hi], lo, plan, return_samples=True)
            np.testing.assert_array_equal(part.samples, whole.samples[:, lo:hi])
            for field in ("mean", "variance", "entropy", "mutual_information"):
                np.testing.assert_array_equal(getattr(part, field), getattr(whole, field)[lo:hi])
    with pytest.raises(ValueError, match="outside"):
        mc._predict_rows(model, x[:5], 20, plan)


def test_shared_mask_dropconnect_is_refused():
    """One weight mask per call would make every pass the same: no MC uncertainty."""
    dropcore.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.DropConnectLinear(8, 3, 0.5))
    with pytest.raises(ValueError, match="per_sample=True"):
        mc.predict(model, X, samples=3)
    assert all(m.training for m in model.modules())


def test_training_flags_restored_and_batchnorm_stays_in_eval():
    model = make_model(bn=True)
    model.train()
    model(dropcore.tensor(X))  # some running statistics
    bn = model[1]
    before = (bn.running_mean.copy(), bn.running_var.copy(), int(bn.num_batches_tracked))
    r = mc.predict(model, X, samples=6, generator=dropcore.Generator(0), return_samples=True)
    assert all(m.training for m in model.modules())
    np.testing.assert_array_equal(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    # BatchNorm normalised with its running statistics, not with the (tiled) batch's
    bn.eval()
    for i in range(len(X)):  # pass 0 of input i: words from i * T * words(H)
        ref = replay_pass(model, X[i : i + 1], [(0, i * 6 * words(H))])
        np.testing.assert_allclose(r.samples[0, i], ref[0], rtol=1e-5, atol=1e-7)
    model.eval()
    mc.predict(model, X, samples=2)
    assert not any(m.training for m in model.modules())
    model[0].train()  # a mixed state comes back exactly
    mc.predict(model, X, samples=2)
    assert [m.training for m in model.modules()] == [False, True, False, False, False, False]


def test_flags_restored_when_the_forward_fails():
    model = make_model()
    model.train()
    with pytest.raises(Exception):
        mc.predict(model, np.zeros((3, 5), np.float32), samples=2, generator=dropcore.Generator(0))
    assert all(m.training for m in model.modules())


class Noisy(nn.Module):
    """A user layer that is stochastic only in training mode."""

    _mc_active = True

    def forward(self, x):
        return x + (dropcore.randn(*x.shape) if self.training else 0.0)


def test_mc_active_marker_and_opt_out():
    dropcore.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), Noisy())
    r = mc.predict(model, X, samples=5)
    assert r.variance.max() > 0
    quiet = make_model()
    quiet[2]._mc_active = False  # a dropout layer opted out: no model uncertainty
    r = mc.predict(quiet, X, samples=5)
    np.testing.assert_allclose(r.variance, 0, atol=1e-12)


def test_tensor_and_array_inputs_agree_and_arrays_take_the_model_dtype():
    model = make_model()
    a = mc.predict(model, dropcore.tensor(X), samples=3, generator=dropcore.Generator(1))
    b = mc.predict(model, X.astype(np.float64), samples=3, generator=dropcore.Generator(1))
    np.testing.assert_array_equal(a.mean, b.mean)
    assert b.mean.dtype == np.float32


def test_empty_batch():
    r = mc.predict(make_model(), X[:0], samples=3, return_samples=True)
    assert r.mean.shape == (0, 4) and r.entropy.shape == (0,) and r.samples.shape == (3, 0, 4)


@pytest.mark.parametrize("kwargs", [{"samples": 0}, {"samples": 2.5}, {"batch_size": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        mc.predict(make_model(), X, **{"samples": 2, **kwargs})
    with pytest.raises(TypeError):
        mc.predict(make_model(), X, samples=2, generator=3)


class Wrapped(nn.Module):
    """Not a Sequential: mc.predict must tile the input and run the whole model."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape)
        return self.inner(x)


def test_the_deterministic_prefix_runs_once_and_changes_no_result():
    model = make_two_dropout_model()
    wrapped = Wrapped(model)
    a = mc.predict(model, X, samples=6, generator=dropcore.Generator(8), return_samples=True)
    b = mc.predict(wrapped, X, samples=6, generator=dropcore.Generator(8), return_samples=True)
    # the whole model on the repeated input (after two small planning forwards)
    assert wrapped.calls == [(2, 6), (4, 6), (6 * len(X), 6)]
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-5, atol=1e-7)
    prefix, rest = mc._split_at_first_stochastic(model)
    assert prefix == [model[0], model[1]] and rest[0] is model[2]
    assert mc._split_at_first_stochastic(wrapped) == ([], [wrapped])
