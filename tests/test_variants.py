"""The dropout family: structure, rates, moments, reference masks, gradients, bad input."""

import math

import numpy as np
import pytest

import dropcore
import dropcore.nn as nn
import dropcore.nn.functional as F

import philox_ref
from gradcheck import gradcheck

ALPHA_PRIME = -1.7580993408473766


def binomial_ok(count, n, q, sigmas=6.0):
    sd = math.sqrt(n * q * (1 - q))
    return abs(count - n * q) <= sigmas * sd


# ----------------------------------------------------------------------------- channel dropout
@pytest.mark.parametrize(
    "fn,shape,groups",
    [
        (F.dropout1d, (4, 6, 5), 24),
        (F.dropout1d, (6, 5), 6),
        (F.dropout2d, (3, 5, 4, 4), 15),
        (F.dropout3d, (2, 3, 2, 3, 4), 6),
        (F.dropout3d, (3, 2, 3, 4), 3),
    ],
)
def test_channel_dropout_drops_whole_channels_by_reference_words(fn, shape, groups):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    g = dropcore.Generator(11, 5)
    y = fn(x, 0.4, generator=g)
    assert g.offset == 5 + groups  # one word per (sample, channel)
    keep = philox_ref.word_keep_mask(11, 5, groups, 0.4)
    per_channel = x.reshape(groups, -1)
    want = np.where(keep[:, None], per_channel * np.float32(1 / 0.6), 0).reshape(shape)
    np.testing.assert_array_equal(y, want)


def test_dropout2d_transcript_shape_and_rate():
    """The notes' nn.Dropout2d() on a (2, 3, 2, 2) tensor of ones: channels all 0 or all 2."""
    y = nn.Dropout2d()(dropcore.full((2, 3, 2, 2), 1.0)).detach().numpy()
    for n in range(2):
        for c in range(3):
            assert len(set(y[n, c].ravel().tolist())) == 1 and y[n, c, 0, 0] in (0.0, 2.0)
    big = F.dropout2d(np.ones((2000, 50, 2, 2), np.float32), 0.3, generator=dropcore.Generator(1))
    kept = int((big[:, :, 0, 0] != 0).sum())
    assert binomial_ok(kept, 100_000, 0.7)


def test_channel_dropout_bad_shapes():
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        F.dropout1d(np.ones((3, 4, 5, 6), np.float32))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout3d(p=1.1)
    with pytest.raises(TypeError):
        F.dropout1d(np.ones((2, 3, 4), np.int64))


# ----------------------------------------------------------------------------- alpha dropout
def test_alpha_dropout_keeps_mean_zero_and_variance_one():
    n = 2_000_000
    x = np.random.default_rng(1).standard_normal(n)
    for p in (0.1, 0.5):
        y = F.alpha_dropout(x, p, training=True, generator=dropcore.Generator(2))
        # Sample mean / variance of n draws: 6-sigma bounds (var of y is ~1, kurtosis small).
        assert abs(y.mean()) < 6 / math.sqrt(n)
        assert abs(y.var() - 1) < 6 * math.sqrt(3 / n)


def test_alpha_dropout_values_follow_pytorchs_constants():
    p = 0.2
    x = np.linspace(-2, 2, 1001)
    g = dropcore.Generator(3)
    y = F.alpha_dropout(x, p, training=True, generator=g)
    assert g.offset == 501  # contract v2: two elements per word, ceil(1001 / 2)
    a = ((1 - p) * (1 + p * ALPHA_PRIME**2)) ** -0.5
    b = -a * ALPHA_PRIME * p
    keep = philox_ref.keep_mask(3, 0, x.size, p)
    np.testing.assert_allclose(y, np.where(keep, a * x + b, a * ALPHA_PRIME + b), rtol=1e-12)
    assert F.alpha_dropout(x, p) is x  # PyTorch's default: training=False


def test_feature_alpha_dropout_shares_a_word_per_channel():
    x = np.random.default_rng(4).standard_normal((6, 7, 3))
    y = F.feature_alpha_dropout(x, 0.5, training=True, generator=dropcore.Generator(5))
    keep = philox_ref.word_keep_mask(5, 0, 42, 0.5).reshape(6, 7)
    a = (0.5 * (1 + 0.5 * ALPHA_PRIME**2)) ** -0.5
    b = -a * ALPHA_PRIME * 0.5
    np.testing.assert_allclose(y, np.where(keep[:, :, None], a * x + b, a * ALPHA_PRIME + b), rtol=1e-12)


# ----------------------------------------------------------------------------- Gaussian
# Paired Box-Muller in float32 (rust/variants/gaussian.rs): variates 2k and 2k+1 of a call
# are r cos(theta), r sin(theta) of words 2k, 2k+1; 2 ceil(n/2) words a call.

def _normal_cdf(z):
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(np.asarray(z, np.float64) / math.sqrt(2.0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7, 1000, 300_001])
def test_gaussian_equals_the_numpy_reference_bit_for_bit(dtype, n):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    g = dropcore.Generator(7, 3)
    y = F.gaussian_noise(x, 0.5, generator=g)
    assert g.offset == 3 + philox_ref.gaussian_words(n)  # 2 ceil(n/2) words
    np.testing.assert_array_equal(y, philox_ref.gaussian_noise(x, 0.5, 7, 3))
    y = F.gaussian_dropout(x, 0.3, generator=g)
    np.testing.assert_array_equal(y, philox_ref.gaussian_dropout(x, 0.3, 7, 3 + philox_ref.gaussian_words(n)))
    assert y.dtype == dtype


_GAUSS_ISA_CHECK = r"""
import sys, numpy as np, dropcore
from dropcore import _core
x = np.random.default_rng(1).standard_normal(300_001)
parts = []
for threads in (1, 2):
    dropcore.set_num_threads(threads)
    for dtype in (np.float32, np.float64):
        for phase in (0, 1):
            parts.append(_core.gaussian_map(x.astype(dtype), 0.7, False, 9, 2**33 + 1, None, phase))
            parts.append(_core.gaussian_map(x.astype(dtype), 0.4, True, 10, 5, None, phase))
np.save(sys.argv[1], np.concatenate([q.astype(np.float64) for q in parts]))
print(_core.simd_isa())
"""


def test_gaussian_is_the_reference_on_every_isa_path_and_thread_count(tmp_path):
    import os
    import subprocess
    import sys

    from test_dropout import _isa_modes

    x = np.random.default_rng(1).standard_normal(300_001)
    want = []
    for dtype in (np.float32, np.float64):
        for phase in (0, 1):
            xd = x.astype(dtype)
            want.append(philox_ref.gaussian_noise(xd, 0.7, 9, 2**33 + 1, phase))
            z = philox_ref.normals(10, 5, xd.size, phase).astype(dtype)
            want.append(xd * (dtype(1) + dtype(0.4) * z))
    want = np.concatenate([w.astype(np.float64) for w in want] * 2)
    for mode in _isa_modes() + [""]:
        path = tmp_path / f"{mode or 'auto'}.npy"
        out = subprocess.run([sys.executable, "-c", _GAUSS_ISA_CHECK, str(path)], capture_output=True, text=True,
                             env={**os.environ, "DROPCORE_SIMD": mode}, check=True)
        if mode:
            assert out.stdout.strip() == {"off": "scalar"}.get(mode, mode)
        np.testing.assert_array_equal(np.load(path), want, err_msg=f"DROPCORE_SIMD={mode!r}")


def test_gaussian_pieces_reproduce_the_whole_call():
    """A piece starting at element a reads pair a // 2 at phase a % 2 (the Dask rule)."""
    from dropcore import _core

    n = 5001
    x = np.zeros(n, np.float32)
    whole = F.gaussian_noise(x, 1.0, generator=dropcore.Generator(4, 9))
    for a, b in [(0, 1), (1, 2), (1, n), (2, 3), (3, 1000), (255, 4097), (4999, n), (n - 1, n)]:
        part = _core.gaussian_map(x[a:b], 1.0, False, 4, 9 + 2 * (a // 2), None, a % 2)
        np.testing.assert_array_equal(part, whole[a:b], err_msg=f"{a}:{b}")
    with pytest.raises(ValueError, match="phase"):
        _core.gaussian_map(x, 1.0, False, 4, 9, None, 2)


def test_gaussian_noise_is_standard_normal():
    """Moments, a Kolmogorov-Smirnov test and tail frequencies, each against its
    sampling distribution (6 sigma, or the KS critical value at alpha = 1e-6)."""
    n = 4_000_000
    z = F.gaussian_noise(np.zeros(n), 1.0, generator=dropcore.Generator(2024))
    mean, var = z.mean(), z.var()
    kurt = np.mean((z - mean) ** 4) / var**2
    assert abs(mean) < 6 / math.sqrt(n)
    assert abs(var - 1) < 6 * math.sqrt(2 / n)
    assert abs(kurt - 3) < 6 * math.sqrt(24 / n)
    assert abs(np.mean(((z - mean) / math.sqrt(var)) ** 3)) < 6 * math.sqrt(6 / n)  # skewness
    # KS on a 500k subsample (the exact CDF by math.erf): sqrt(n) D < 2.77 has alpha = 1e-6
    s = np.sort(z[:: n // 500_000])
    m = s.size
    cdf = _normal_cdf(s)
    d = max(np.max(np.arange(1, m + 1) / m - cdf), np.max(cdf - np.arange(m) / m))
    assert math.sqrt(m) * d < math.sqrt(-0.5 * math.log(1e-6 / 2)), d
    # tails: |z| > 2, 3, 4, 4.5 within binomial bounds
    for t in (2.0, 3.0, 4.0, 4.5):
        q = 2 * (1 - _normal_cdf(t))
        assert binomial_ok(np.count_nonzero(np.abs(z) > t), n, float(q)), t
    assert np.abs(z).max() < 6.67  # the largest |z| the words can give (u >= 2^-32)


def test_gaussian_cosine_and_sine_halves_are_uncorrelated():
    """Both halves of a pair are N(0, 1) and independent: correlation of (z_2k, z_2k+1),
    of neighbours across pairs, and of the squares (a shared radius would show there)."""
    n = 2_000_000
    z = F.gaussian_noise(np.zeros(n, np.float32), 1.0, generator=dropcore.Generator(5)).astype(np.float64)
    c, s = z[0::2], z[1::2]
    bound = 6 / math.sqrt(n // 2)
    for a, b in [(c, s), (s[:-1], c[1:]), (c**2 - 1, s**2 - 1)]:
        assert abs(np.corrcoef(a, b)[0, 1]) < bound
    for half in (c, s):
        assert abs(half.mean()) < 6 / math.sqrt(half.size) and abs(half.var() - 1) < 6 * math.sqrt(2 / half.size)


def test_gaussian_dropout_noise_moments():
    n = 1_000_000
    for p in (0.2, 0.5):
        noise = F.gaussian_dropout(np.ones(n), p, generator=dropcore.Generator(6))
        var = p / (1 - p)
        assert abs(noise.mean() - 1) < 6 * math.sqrt(var / n)
        assert abs(noise.var() - var) < 6 * var * math.sqrt(2 / n)


def test_gaussian_eval_is_identity():
    x = np.zeros(10)
    assert F.gaussian_noise(x, 0.5, training=False) is x
    assert F.gaussian_dropout(x, 0.5, training=False) is x


# ----------------------------------------------------------------------------- DropBlock
def test_drop_block_drops_square_blocks_at_about_rate_p():
    x = np.ones((8, 16, 24, 24), np.float32)
    y = F.drop_block2d(x, 0.15, 5, generator=dropcore.Generator(8))
    dropped = y == 0
    frac = dropped.mean()
    assert 0.10 < frac < 0.20, frac  # gamma's approximation, not a binomial
    kept_value = y[~dropped]
    np.testing.assert_allclose(kept_value, x.size / (~dropped).sum(), rtol=1e-6)
    # Every dropped unit lies in a fully dropped 5x5 block.
    d = dropped.astype(np.int32)
    from numpy.lib.stride_tricks import sliding_window_view

    full = sliding_window_view(d, (5, 5), axis=(2, 3)).min(axis=(-1, -2))
    covered = np.zeros_like(d)
    for i in range(5):
        for j in range(5):
            covered[:, :, i : i + 20, j : j + 20] |= full
    np.testing.assert_array_equal(covered.astype(bool), dropped)


def test_drop_block_bad_input():
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="block_size"):
        F.drop_block2d(x, 0.1, 5)
    with pytest.raises(ValueError, match="N, C, H, W"):
        F.drop_block2d(np.ones((4, 4), np.float32), 0.1, 2)
    assert F.drop_block2d(x, 0.1, 2, training=False) is x


# ----------------------------------------------------------------------------- DropPath
def test_drop_path_drops_whole_samples():
    x = np.random.default_rng(9).standard_normal((1000, 3, 4))
    g = dropcore.Generator(10)
    y = F.drop_path(x, 0.3, training=True, generator=g)
    assert g.offset == 1000
    keep = philox_ref.word_keep_mask(10, 0, 1000, 0.3)
    np.testing.assert_allclose(y, np.where(keep[:, None, None], x / 0.7, 0), rtol=1e-12)
    y2 = F.drop_path(x, 0.3, training=True, scale_by_keep=False, generator=dropcore.Generator(10))
    np.testing.assert_array_equal(y2, np.where(keep[:, None, None], x, 0))
    assert F.drop_path(x, 0.3) is x  # timm's default training=False


# ----------------------------------------------------------------------------- DropConnect
def test_dropconnect_shared_mask_is_element_dropout_of_the_weights():
    dropcore.manual_seed(0)
    layer = nn.DropConnectLinear(6, 4, p=0.5, generator=dropcore.Generator(12))
    x = dropcore.randn(5, 6)
    y = layer(x).data
    assert layer.generator.offset == 12  # 24 weight entries, two per word
    keep = philox_ref.keep_mask(12, 0, 24, 0.5).reshape(4, 6)
    w = np.where(keep, layer.weight.data * np.float32(2), 0)
    np.testing.assert_allclose(y, x.data @ w.T + layer.bias.data, rtol=1e-5, atol=1e-6)
    layer.eval()
    np.testing.assert_allclose(layer(x).data, x.data @ layer.weight.data.T + layer.bias.data, rtol=1e-6)


def test_dropconnect_per_sample_uses_one_mask_per_example():
    rng = np.random.default_rng(13)
    x, w, b = rng.standard_normal((3, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    g = dropcore.Generator(14, 1)
    y = F.dropconnect_linear(dropcore.Tensor(x), dropcore.Tensor(w), dropcore.Tensor(b), 0.4, per_sample=True,
                             generator=g)
    assert g.offset == 1 + 30  # 60 entries, two per word
    keep = philox_ref.keep_mask(14, 1, 3 * 20, 0.4).reshape(3, 4, 5)
    want = np.einsum("bi,boi->bo", x, w[None] * keep) / 0.6 + b
    np.testing.assert_allclose(y.data, want, rtol=1e-12)


def test_dropconnect_per_sample_ties_and_odd_rows_follow_the_v2_rule():
    # Odd row lengths make every other mask row start in the high half of a word; a p
    # whose T_hi is the lane of some entries makes those entries ties.
    rng = np.random.default_rng(16)
    x, w = rng.standard_normal((7, 9)), rng.standard_normal((5, 9))
    seed, offset, n = 15, 3, 7 * 5 * 9
    u = philox_ref.lanes(seed, offset, n)
    t = (int(u[100]) << 16) | 0x8000  # T_hi = lane of entry 100, T_lo != 0
    p = 1.0 - t / 2.0**32
    assert philox_ref.threshold(p) == t and philox_ref.tie_count(seed, offset, n, p) >= 1
    g = dropcore.Generator(seed, offset)
    y = F.dropconnect_linear(dropcore.Tensor(x), dropcore.Tensor(w), None, p, per_sample=True, generator=g)
    assert g.offset == offset + (n + 1) // 2
    keep = philox_ref.keep_mask(seed, offset, n, p).reshape(7, 5, 9)
    want = np.einsum("bi,boi->bo", x, w[None] * keep) / np.float64(1 - p)
    np.testing.assert_allclose(y.data, want, rtol=1e-12)


# ----------------------------------------------------------------------------- gradients
X4 = np.random.default_rng(15).standard_normal((2, 3, 4, 4))


@pytest.mark.parametrize(
    "fn,x",
    [
        (lambda t, g: F.dropout2d(t, 0.5, generator=g), X4),
        (lambda t, g: F.dropout1d(t, 0.3, generator=g), X4[0]),
        (lambda t, g: F.dropout3d(t, 0.3, generator=g), X4[:, :, None]),
        (lambda t, g: F.alpha_dropout(t, 0.3, training=True, generator=g), X4),
        (lambda t, g: F.feature_alpha_dropout(t, 0.3, training=True, generator=g), X4),
        (lambda t, g: F.gaussian_dropout(t, 0.4, generator=g), X4),
        (lambda t, g: F.gaussian_noise(t, 0.7, generator=g), X4),
        (lambda t, g: F.drop_block2d(t, 0.3, 3, generator=g), X4),
        (lambda t, g: F.drop_path(t, 0.5, training=True, generator=g), X4),
    ],
)
def test_gradients_with_the_generator_replayed(fn, x):
    g = dropcore.Generator(16)
    gradcheck(lambda t: fn(t, g), x, replay=g)


@pytest.mark.parametrize("per_sample", [False, True])
def test_dropconnect_gradients(per_sample):
    rng = np.random.default_rng(17)
    g = dropcore.Generator(18)
    gradcheck(
        lambda x, w, b: F.dropconnect_linear(x, w, b, 0.5, per_sample=per_sample, generator=g),
        rng.standard_normal((3, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4), replay=g,
    )


# ----------------------------------------------------------------------------- modes, threads, input
@pytest.mark.parametrize(
    "module",
    [nn.Dropout1d(), nn.Dropout2d(), nn.Dropout3d(), nn.AlphaDropout(), nn.FeatureAlphaDropout(),
     nn.GaussianDropout(0.3), nn.GaussianNoise(0.5), nn.DropBlock2d(0.2, 2), nn.DropPath(0.3)],
)
def test_eval_mode_is_the_identity(module):
    x = dropcore.randn(2, 3, 16) if isinstance(module, nn.Dropout1d) else dropcore.randn(2, 3, 4, 4)
    module.eval()
    assert module(x) is x
    module.train()
    assert not np.array_equal(module(x).data, x.data)


def test_thread_count_invariance():
    x = np.random.default_rng(19).standard_normal((64, 32, 16, 16)).astype(np.float32)
    fns = [
        lambda g: F.dropout2d(x, 0.5, generator=g),
        lambda g: F.alpha_dropout(x, 0.5, training=True, generator=g),
        lambda g: F.gaussian_dropout(x, 0.5, generator=g),
        lambda g: F.drop_block2d(x, 0.2, 3, generator=g),
    ]
    before = dropcore.get_num_threads()
    try:
        for fn in fns:
            outs = []
            for n in (1, 2, 7):
                dropcore.set_num_threads(n)
                outs.append(fn(dropcore.Generator(20)))
            np.testing.assert_array_equal(outs[0], outs[1])
            np.testing.assert_array_equal(outs[0], outs[2])
    finally:
        dropcore.set_num_threads(before)


@pytest.mark.parametrize("p", [-0.5, 2.0, float("nan")])
def test_bad_probabilities_name_the_value(p):
    x = np.ones((2, 3, 4, 4), np.float32)
    for fn in (F.dropout2d, F.alpha_dropout, F.drop_path):
        with pytest.raises(ValueError, match="between 0 and 1"):
            fn(x, p)
    with pytest.raises(ValueError):
        nn.GaussianDropout(p)


def test_inplace_channel_dropout_on_ndarray_and_read_only():
    x = np.ones((2, 3, 4), np.float32)
    y = F.dropout1d(x, 0.5, inplace=True, generator=dropcore.Generator(21))
    assert y is x and set(np.unique(x).tolist()) <= {0.0, 2.0}
    ro = np.ones((2, 3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        F.dropout1d(ro, 0.5, inplace=True)


def test_mc_predict_keeps_every_family_member_stochastic():
    dropcore.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.GaussianNoise(0.3), nn.ReLU(), nn.DropConnectLinear(8, 3, 0.5, per_sample=True))
    r = dropcore.mc.predict(model, np.ones((4, 5), np.float32), samples=10)
    assert r.mutual_information.max() > 0


def test_channel_dropout_into_an_out_buffer():
    x = np.random.default_rng(22).standard_normal((4, 6, 5, 5)).astype(np.float32)
    buf = np.full_like(x, 7.0)
    got = F.dropout2d(x, 0.5, generator=dropcore.Generator(23), out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, F.dropout2d(x, 0.5, generator=dropcore.Generator(23)))
    with pytest.raises(ValueError):
        F.dropout2d(x, 0.5, out=np.empty((4, 6, 5), np.float32))
    with pytest.raises(TypeError):
        F.dropout2d(dropcore.tensor(x), 0.5, out=buf)
    np.testing.assert_array_equal(F.dropout2d(x, 0.5, training=False, out=buf), x)
