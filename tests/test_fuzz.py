"""Property-based fuzzing of every public kernel (issue 10), with hypothesis.

Every function of the dropout family runs over random shapes (ranks 0-6, empty
dims), dtypes and byte orders, memory layouts (C, Fortran, strided, reversed,
unaligned), special values (inf, NaN, -0, subnormals), drop probabilities, seeds and
offsets up to the end of the stream, in three modes (new array, ``inplace=True``,
``out=`` of its own layout), and is compared with the independent NumPy Philox
reference in ``tests/philox_ref.py``. Bad inputs must raise an ordinary Python
exception (never ``PanicException``) and leave the input, ``out`` and the generator
untouched.

Bounded to a few seconds per property; ``DROPCORE_FUZZ_EXAMPLES=2000 python -m pytest
tests/test_fuzz.py`` runs a longer, randomised campaign (the default run is
derandomised, so CI sees the same examples every time).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dropcore
import dropcore.nn.functional as F
import philox_ref

_KNOB = os.environ.get("DROPCORE_FUZZ_EXAMPLES")
EXAMPLES = int(_KNOB) if _KNOB else 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=_KNOB is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
STREAM_END = 1 << 64
MAX_ELEMENTS = 2000

# ----------------------------------------------------------------------------- references
_ALPHA_PRIME = -1.7580993408473766


def _element_keep(seed, offset, n, p):
    return philox_ref.keep_mask(seed, offset, n, p)


def _element_words(n):
    return philox_ref.words_for(n) if hasattr(philox_ref, "words_for") else n


def _group_keep(seed, offset, groups, p):
    """Grouped rules read one whole word per group: keep iff word < round((1-p) 2^32)."""
    t = round((1.0 - p) * 2.0**32)
    return philox_ref.words(seed, offset, groups).astype(np.uint64) < np.uint64(t) if t < 2**32 else np.ones(groups, bool)


def ref_dropout(v, p, seed, offset, inverted=True):
    keep = _element_keep(seed, offset, v.size, p).reshape(v.shape)
    scale = v.dtype.type(1.0 / (1.0 - p)) if (inverted and p < 1) else v.dtype.type(1.0)
    return np.where(keep, v * scale, v.dtype.type(0))


def _alpha(p):
    a = ((1.0 - p) * (1.0 + p * _ALPHA_PRIME**2)) ** -0.5
    b = -a * _ALPHA_PRIME * p
    return a, b, a * _ALPHA_PRIME + b


def ref_alpha(v, p, seed, offset):
    if p == 1.0:
        return np.zeros_like(v)
    a, b, d = (v.dtype.type(c) for c in _alpha(p))
    keep = _element_keep(seed, offset, v.size, p).reshape(v.shape)
    return np.where(keep, v * a + b, d)


def ref_grouped(v, p, seed, offset, n_groups, a, b=0.0, d=0.0):
    keep = _group_keep(seed, offset, n_groups, p)
    t = v.dtype.type
    g = v.reshape(n_groups, -1) if n_groups else v.reshape(0, 1)
    return np.where(keep[:, None], g * t(a) + t(b) if b else g * t(a), t(d)).reshape(v.shape)


def _channel_scale(p):
    return 1.0 / (1.0 - p) if p < 1.0 else 0.0


def ref_feature_alpha(v, p, seed, offset):
    if p == 1.0:
        return np.zeros_like(v)
    a, b, d = _alpha(p)
    return ref_grouped(v, p, seed, offset, math.prod(v.shape[:2]), a, b, d)


def ref_gaussian_noise(v, s, seed, offset):
    return philox_ref.gaussian_noise(v, s, seed, offset)


def ref_gaussian_dropout(v, p, seed, offset):
    return philox_ref.gaussian_dropout(v, p, seed, offset)


def ref_drop_block(v, p, block, seed, offset):
    """DropBlock by its definition (rust/variants/dropblock.rs module doc), in NumPy."""
    n, c, h, w = v.shape
    gamma = min(p / block**2 * (h * w) / ((h - block + 1) * (w - block + 1)), 1.0)
    t = round(gamma * 2.0**32)
    words = philox_ref.words(seed, offset, v.size).reshape(n, c, h, w).astype(np.uint64)
    half = block // 2
    centre = np.zeros((n, c, h, w), bool)
    rows, cols = slice(half, h + half - block + 1), slice(half, w + half - block + 1)
    centre[:, :, rows, cols] = words[:, :, rows, cols] < np.uint64(t)
    dropped = np.zeros_like(centre)
    for ci, cj in zip(*np.nonzero(centre.any(axis=(0, 1)))):
        hit = centre[:, :, ci, cj]
        dropped[:, :, ci - half : ci - half + block, cj - half : cj - half + block] |= hit[:, :, None, None]
    kept = int((~dropped).sum())
    scale = v.dtype.type(v.size / kept) if kept else v.dtype.type(0)
    return np.where(dropped, v.dtype.type(0), v * scale)


# ----------------------------------------------------------------------------- the family
# name -> (call(x, p, gen, **mode), allowed ranks, words(shape, p) for a non-empty
#          training call, reference(v, p, seed, offset), exact?, takes inplace=?)
def _groups(shape, batched_rank):
    """Groups of channel dropout: (N, C) when batched, else the first dim."""
    return math.prod(shape[:2]) if len(shape) == batched_rank else shape[0]


def _channel(batched_rank):
    return lambda v, p, s, o: ref_grouped(v, p, s, o, _groups(v.shape, batched_rank), _channel_scale(p))


KERNELS = {
    "dropout": (
        lambda x, p, g, **k: F.dropout(x, p, generator=g, **k),
        range(0, 7), lambda s, p: _element_words(math.prod(s)), ref_dropout, True, True),
    "dropout_vanilla": (
        lambda x, p, g, **k: F.dropout(x, p, generator=g, inverted=False, **k),
        range(0, 7), lambda s, p: _element_words(math.prod(s)),
        lambda v, p, s, o: ref_dropout(v, p, s, o, inverted=False), True, True),
    "alpha_dropout": (
        lambda x, p, g, **k: F.alpha_dropout(x, p, True, generator=g, **k),
        range(0, 7), lambda s, p: 0 if p == 1 else _element_words(math.prod(s)), ref_alpha, True, True),
    "dropout1d": (
        lambda x, p, g, **k: F.dropout1d(x, p, generator=g, **k),
        (2, 3), lambda s, p: _groups(s, 3), _channel(3), True, True),
    "dropout2d": (
        lambda x, p, g, **k: F.dropout2d(x, p, generator=g, **k),
        (4,), lambda s, p: _groups(s, 4), _channel(4), True, True),
    "dropout3d": (
        lambda x, p, g, **k: F.dropout3d(x, p, generator=g, **k),
        (4, 5), lambda s, p: _groups(s, 5), _channel(5), True, True),
    "feature_alpha_dropout": (
        lambda x, p, g, **k: F.feature_alpha_dropout(x, p, True, generator=g, **k),
        range(2, 7), lambda s, p: 0 if p == 1 else math.prod(s[:2]), ref_feature_alpha, True, True),
    "drop_path": (
        lambda x, p, g, **k: F.drop_path(x, p, True, generator=g, **k),
        range(1, 7), lambda s, p: s[0],
        lambda v, p, s, o: ref_grouped(v, p, s, o, v.shape[0], _channel_scale(p)), True, False),
    "gaussian_dropout": (
        lambda x, p, g, **k: F.gaussian_dropout(x, min(p, 0.99), generator=g, **k),
        range(0, 7), lambda s, p: philox_ref.gaussian_words(math.prod(s)),
        lambda v, p, s, o: ref_gaussian_dropout(v, min(p, 0.99), s, o), True, False),
    "gaussian_noise": (
        lambda x, p, g, **k: F.gaussian_noise(x, 3 * p, generator=g, **k),
        range(0, 7), lambda s, p: philox_ref.gaussian_words(math.prod(s)),
        lambda v, p, s, o: ref_gaussian_noise(v, 3 * p, s, o), True, False),
}


# ----------------------------------------------------------------------------- strategies
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -5e-324, 3.0e38, 1.0]
LAYOUTS = ["C", "F", "strided", "reversed", "unaligned", "transposed"]


@st.composite
def shapes(draw, ranks):
    rank = draw(st.sampled_from(list(ranks)))
    dims = draw(st.lists(st.integers(0, 6), min_size=rank, max_size=rank))
    if math.prod(dims) > MAX_ELEMENTS:
        dims = [min(d, 3) for d in dims]
    return tuple(dims)


@st.composite
def values(draw, shape, dtype):
    n = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    v = rng.standard_normal(n) * draw(st.sampled_from([1.0, 1e-3, 1e3]))
    if n and draw(st.booleans()):
        k = draw(st.integers(1, min(n, 8)))
        idx = rng.integers(0, n, k)
        v[idx] = rng.choice(SPECIALS, k)
    with np.errstate(over="ignore"):
        return v.astype(dtype).reshape(shape)


def laid_out(v: np.ndarray, layout: str, byteorder: str) -> np.ndarray:
    """An array with the logical values ``v`` in the given memory layout."""
    dt = v.dtype.newbyteorder(byteorder)
    shape = v.shape
    if layout == "F":
        a = np.empty(shape, dt, order="F")
    elif layout == "strided" and v.ndim:
        a = np.empty(tuple(2 * d for d in shape), dt)[tuple(slice(None, None, 2) for _ in shape)]
    elif layout == "reversed" and v.ndim:
        a = np.empty(shape, dt)[tuple(slice(None, None, -1) for _ in shape)]
    elif layout == "unaligned":
        buf = bytearray(v.size * dt.itemsize + 1)
        a = np.frombuffer(buf, dt, count=v.size, offset=1).reshape(shape)
    elif layout == "transposed" and v.ndim:
        a = np.empty(shape[::-1], dt).T
    else:
        a = np.empty(shape, dt)
    a[...] = v
    return a


@st.composite
def cases(draw, name):
    call, ranks, words, ref, exact, inplace_ok = KERNELS[name]
    shape = draw(shapes(ranks))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    v = draw(values(shape, dtype))
    x = laid_out(v, draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(["=", "=", ">"])))
    p = draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5, 1e-9, 1 - 1e-9, 0.1, 0.9]), st.floats(0.0, 1.0)))
    seed = draw(st.integers(0, 2**64 - 1))
    need = words(shape, p) if math.prod(shape) else 0
    offset = draw(st.one_of(st.integers(0, 2**20), st.integers(STREAM_END - need - 3, STREAM_END - need)
                            .filter(lambda o: o >= 0)))
    modes = ["new", "out"] + (["inplace"] if inplace_ok else [])
    mode = draw(st.sampled_from(modes))
    out = None
    if mode == "out":
        out = laid_out(np.zeros(shape, dtype), draw(st.sampled_from(LAYOUTS)), x.dtype.byteorder if x.dtype.byteorder in "<>" else "=")
    return name, v, x, p, seed, offset, mode, out


def _check(name, v, x, p, seed, offset, mode, out):
    call, ranks, words, ref, exact, inplace_ok = KERNELS[name]
    g = dropcore.Generator(seed, offset)
    kw = {"inplace": True} if mode == "inplace" else ({"out": out} if mode == "out" else {})
    x_before = x.copy()
    y = call(x, p, g, **kw)
    identity = p == 0.0
    # Words drawn: none for identity calls and empty arrays, else the variant's count.
    drawn = 0 if identity or v.size == 0 else words(v.shape, p)
    assert g.offset == offset + drawn, (g.offset, offset, drawn)
    if mode == "inplace":
        assert y is x
    elif mode == "out":
        assert y is out
    else:
        np.testing.assert_array_equal(x, x_before)  # the input is untouched
        if identity:
            assert y is x
    assert y.shape == v.shape
    if identity or v.size == 0:
        np.testing.assert_array_equal(y, v)
        return
    with np.errstate(all="ignore"):  # inf * 0 and overflow are part of the fuzzing
        want = ref(v, p, seed, offset)
    got = np.asarray(y)
    if exact:
        np.testing.assert_array_equal(got, want)
        assert got.dtype.newbyteorder("=") == v.dtype
    else:
        tol = 1e-4 if v.dtype == np.float32 else 1e-9
        with np.errstate(all="ignore"):  # the dtype's own overflow to inf, as the kernel's
            want = want.astype(v.dtype).astype(np.float64)
            np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol * (1 + 3 * p))


@pytest.mark.parametrize("name", list(KERNELS))
def test_every_kernel_matches_the_reference_over_shapes_dtypes_layouts_and_modes(name):
    @FUZZ
    @given(cases(name))
    def prop(case):
        _check(*case)

    prop()


@st.composite
def block_cases(draw):
    n, c = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    block = draw(st.integers(1, min(h, w)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    v = draw(values((n, c, h, w), dtype))
    x = laid_out(v, draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(["=", ">"])))
    p = draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0)))
    return v, x, p, block, draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**30)), draw(st.sampled_from(["new", "out", "inplace"]))


@FUZZ
@given(block_cases())
def test_drop_block2d_matches_its_definition(case):
    v, x, p, block, seed, offset, mode = case
    g = dropcore.Generator(seed, offset)
    out = np.zeros(v.shape, x.dtype) if mode == "out" else None
    kw = {"inplace": True} if mode == "inplace" else ({"out": out} if mode == "out" else {})
    y = F.drop_block2d(x, p, block, generator=g, **kw)
    if p == 0.0:
        assert g.offset == offset
        np.testing.assert_array_equal(y, v)
        return
    assert g.offset == offset + v.size
    with np.errstate(all="ignore"):
        want = ref_drop_block(v, p, block, seed, offset)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h, w", [(1, 1), (4, 1), (3, 63), (2, 64), (64, 64), (5, 65), (65, 7), (7, 9)])
def test_drop_block2d_bit_mask_edges_match_the_definition(h, w, dtype):
    # Maps up to 64 wide and high take the bit-mask kernel (65 the window sums): rows
    # of 1, 63 and 64 units, rows that straddle 64-bit words (7 x 9), every block size.
    v = np.random.default_rng(h * 100 + w).standard_normal((2, 3, h, w)).astype(dtype)
    v.flat[::7] = np.inf
    for block in range(1, min(h, w, 7) + 1):
        for p in (0.1, 0.6, 1.0):
            seed, offset = 2**40 + block, 3 * block
            y = F.drop_block2d(v, p, block, generator=dropcore.Generator(seed, offset))
            with np.errstate(all="ignore"):
                want = ref_drop_block(v, p, block, seed, offset)
            np.testing.assert_array_equal(y, want, err_msg=f"block {block}, p={p}")


def test_drop_block2d_parallel_call_matches_the_definition():
    # Large enough for both kernel passes to split over threads; 7 x 9 planes (63 units)
    # make the mask tasks round up to whole 64-bit words.
    v = np.random.default_rng(5).standard_normal((40, 60, 7, 9)).astype(np.float32)
    before = dropcore.get_num_threads()
    try:
        for threads in (1, 2, 3):
            dropcore.set_num_threads(threads)
            y = F.drop_block2d(v, 0.3, 3, generator=dropcore.Generator(11, 4))
            np.testing.assert_array_equal(y, ref_drop_block(v, 0.3, 3, 11, 4), err_msg=f"{threads} threads")
    finally:
        dropcore.set_num_threads(before)


# ----------------------------------------------------------------------------- bad input
def _bad_arrays():
    return [
        np.ones((2, 3), np.int64), np.ones((2, 3), bool), np.ones((2, 3), np.complex128),
        np.ones((2, 3), np.float16), np.array([[1.0, "a", 2.0]], object), [[1.0, 2.0]], "x", None,
    ]


BAD_P = [-0.1, 1.5, float("nan"), float("inf"), "0.5", True, None, [0.5], 1e400, -0.0 - 1e-300]


@st.composite
def bad_calls(draw):
    """(description, call(x, out, g), x, out) where the call must fail cleanly."""
    name = draw(st.sampled_from(sorted(KERNELS)))
    call, ranks, words, ref, exact, inplace_ok = KERNELS[name]
    shape = draw(shapes(ranks).filter(lambda s: math.prod(s) > 0))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(values(shape, dtype))
    out = np.full(shape, 7.0, dtype)
    kind = draw(st.sampled_from(["p", "dtype", "out-shape", "out-dtype", "out-readonly", "out-overlap",
                                 "inplace-readonly", "inplace-overlap", "two-destinations", "out-type"]))
    if name.startswith("gaussian") and kind == "p":
        kind = "dtype"
    if not inplace_ok and kind.startswith(("inplace", "two")):
        kind = "out-shape"
    if kind == "p":
        bad = draw(st.sampled_from(BAD_P))
        return kind, lambda x, o, g: call(x, bad, g), x, out
    if kind == "dtype":
        bad = draw(st.sampled_from(_bad_arrays()))
        return kind, lambda x, o, g: call(bad, 0.5, g), x, out
    if kind == "out-shape":
        return kind, lambda x, o, g: call(x, 0.5, g, out=np.zeros(shape + (2,), dtype)), x, out
    if kind == "out-dtype":
        other = np.float64 if dtype == np.float32 else np.float32
        return kind, lambda x, o, g: call(x, 0.5, g, out=np.zeros(shape, other)), x, out
    if kind == "out-type":
        return kind, lambda x, o, g: call(x, 0.5, g, out=o.tolist()), x, out
    if kind == "out-readonly":
        out.flags.writeable = False
        return kind, lambda x, o, g: call(x, 0.5, g, out=o), x, out
    if kind == "out-overlap":
        return kind, lambda x, o, g: call(x, 0.5, g, out=x.view()), x, out
    if kind == "inplace-readonly":
        x.flags.writeable = False
        return kind, lambda x, o, g: call(x, 0.5, g, inplace=True), x, out
    if kind == "inplace-overlap":
        if x.size < 2:
            return "out-dtype", lambda x, o, g: call(x, 0.5, g, out=np.zeros(shape, np.int32)), x, out
        view = np.lib.stride_tricks.as_strided(x, shape, (0,) * len(shape))
        return kind, lambda x, o, g: call(view, 0.5, g, inplace=True), x, out
    return kind, lambda x, o, g: call(x, 0.5, g, inplace=True, out=o), x, out


@FUZZ
@given(bad_calls(), st.integers(0, 2**64 - 1), st.integers(0, 2**40))
def test_bad_input_fails_cleanly_and_touches_nothing(bad, seed, offset):
    kind, call, x, out = bad
    g = dropcore.Generator(seed, offset)
    x_before, out_before = x.copy(), out.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's rank warnings are not the point here
        try:
            call(x, out, g)
        except (TypeError, ValueError, RuntimeError):
            pass
        except BaseException as e:  # PanicException, SystemError, ... are defects
            raise AssertionError(f"{kind}: {type(e).__name__}: {e}") from e
        else:
            raise AssertionError(f"{kind}: the call succeeded")
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(out, out_before)
    assert g.get_state() == (seed, offset)


# ----------------------------------------------------------------------------- Generator offsets
@FUZZ
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64),
    st.lists(st.one_of(st.integers(0, 2**65), st.integers(0, 2**63 - 1).map(np.int64),
                       st.integers(0, 2**64 - 1).map(np.uint64), st.floats(0, 10), st.booleans(),
                       st.integers(-5, -1)), max_size=8),
)
def test_generator_offsets_stay_python_ints_in_range_and_never_repeat(seed, offset, requests):
    g = dropcore.Generator(seed, offset)
    for n in requests:
        before = g.offset
        try:
            s, start = g.take(n)
        except TypeError:
            assert isinstance(n, (float, bool))
        except ValueError:
            assert int(n) < 0
        except OverflowError:
            assert int(n) > STREAM_END - before
        else:
            assert not isinstance(n, (float, bool)) and s == seed and start == before
            assert g.offset == before + int(n)
        assert type(g.offset) is int and before <= g.offset <= STREAM_END
