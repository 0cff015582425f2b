"""MC-dropout prediction: probabilities, uncertainty identities, determinism, modes."""

import numpy as np
import pytest

import dropcore
import dropcore.nn as nn
from dropcore import mc


def make_model(p=0.5, bn=False):
    dropcore.manual_seed(0)
    layers = [nn.Linear(6, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(p), nn.Linear(16, 4)]
    return nn.Sequential(*layers)


X = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)


def test_shapes_and_probability_identities():
    r = mc.predict(make_model(), X, samples=25, generator=dropcore.Generator(1), return_samples=True)
    assert r.mean.shape == (9, 4) and r.variance.shape == (9, 4)
    assert r.entropy.shape == (9,) and r.mutual_information.shape == (9,)
    np.testing.assert_allclose(r.mean.sum(1), 1, rtol=1e-5)
    assert (r.variance >= 0).all()
    assert (r.mutual_information >= 0).all() and (r.mutual_information <= r.entropy + 1e-6).all()
    assert (r.entropy <= np.log(4) + 1e-6).all()
    np.testing.assert_allclose(r.samples.mean(0), r.mean, rtol=1e-6)
    assert r.mutual_information.max() > 1e-4  # dropout makes the passes differ


def test_no_dropout_means_no_model_uncertainty():
    model = make_model()
    plain = nn.Sequential(model[0], model[1], model[3])
    r = mc.predict(plain, X, samples=10)
    np.testing.assert_allclose(r.variance, 0, atol=1e-12)
    np.testing.assert_allclose(r.mutual_information, 0, atol=1e-6)


def test_deterministic_given_the_generator_and_it_advances():
    model = make_model()
    g1, g2 = dropcore.Generator(7), dropcore.Generator(7)
    a = mc.predict(model, X, samples=8, generator=g1)
    b = mc.predict(model, X, samples=8, generator=g2)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert g1.offset == 8 * 9 * 16  # one dropout call over T x B x 16 units
    c = mc.predict(model, X, samples=8, generator=g1)
    assert not np.array_equal(a.mean, c.mean)


def test_batched_passes_equal_a_per_sample_loop_on_the_same_words():
    """Sample t of the batched run reads the word range a separate pass t would read."""
    model = make_model()
    T, B = 5, len(X)
    r = mc.predict(model, X, samples=T, generator=dropcore.Generator(3), return_samples=True)
    model.train()
    for t in range(T):
        dropcore.default_generator.set_state((3, t * B * 16))
        with dropcore.no_grad():
            logits = model(dropcore.tensor(X)).data
        p = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(r.samples[t], p / p.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_chunking_by_batch_size_changes_nothing_but_memory():
    model = make_model()
    a = mc.predict(model, X, samples=4, generator=dropcore.Generator(2), batch_size=8)  # 2 inputs per chunk
    b = mc.predict(model, X, samples=4, generator=dropcore.Generator(2))
    assert a.mean.shape == b.mean.shape
    np.testing.assert_allclose(a.mean.sum(1), 1, rtol=1e-5)


def test_training_flags_restored_and_batchnorm_stays_in_eval():
    model = make_model(bn=True)
    model.train()
    model(dropcore.tensor(X))  # some running statistics
    bn = model[1]
    before = (bn.running_mean.copy(), bn.running_var.copy(), int(bn.num_batches_tracked))
    mc.predict(model, X, samples=6)
    assert all(m.training for m in model.modules())
    np.testing.assert_array_equal(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    model.eval()
    mc.predict(model, X, samples=2)
    assert not any(m.training for m in model.modules())


def test_bad_samples():
    with pytest.raises(ValueError):
        mc.predict(make_model(), X, samples=0)
