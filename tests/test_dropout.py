"""Element dropout on NumPy arrays: masks, scaling, layouts, threads, bad input (SPEC §2, §4)."""

import math
import sys
import threading

import numpy as np
import pytest

import dropcore
from dropcore import _core
from dropcore.dropout import dropout

import philox_ref


def binomial_bound(n: int, q: float, sigmas: float = 6.0) -> tuple[float, float]:
    """An interval that holds a Binomial(n, q) count except with probability < 1e-8."""
    sd = math.sqrt(n * q * (1 - q))
    return n * q - sigmas * sd, n * q + sigmas * sd


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed,offset,p", [(0, 0, 0.5), (1, 7, 0.1), (2**63 + 5, 2**40 + 3, 0.9), (99, 1, 0.3333)])
def test_masks_equal_the_numpy_reference(dtype, seed, offset, p):
    x = np.random.default_rng(seed % 1000).standard_normal(70_001).astype(dtype)
    got = dropout(x, p, generator=dropcore.Generator(seed, offset))
    want = philox_ref.dropout(x, p, seed, offset)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_keep_rate_within_binomial_bound(p):
    n = 1_000_000
    y = dropout(np.ones(n, np.float32), p, generator=dropcore.Generator(2024))
    kept = int(np.count_nonzero(y))
    lo, hi = binomial_bound(n, 1 - p)
    assert lo <= kept <= hi
    # Kept values are exactly 1/(1-p) rounded once to float32.
    assert set(np.unique(y).tolist()) == {0.0, float(np.float32(1 / (1 - p)))}


def test_thread_counts_give_identical_arrays():
    x = np.random.default_rng(0).standard_normal(1_000_003).astype(np.float32)
    before = dropcore.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 7):
            dropcore.set_num_threads(n)
            assert dropcore.get_num_threads() == n
            outs.append(dropout(x, 0.5, generator=dropcore.Generator(5)))
    finally:
        dropcore.set_num_threads(before)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_eight_python_threads_at_once():
    x = np.random.default_rng(1).standard_normal(300_000).astype(np.float32)
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(k):
        barrier.wait()
        results[k] = dropout(x, 0.5, generator=dropcore.Generator(k))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(8):
        np.testing.assert_array_equal(results[k], philox_ref.dropout(x, 0.5, k, 0))


def test_the_gil_is_released_while_the_kernel_runs():
    x = np.ones(30_000_000, np.float32)
    ticks = []
    stop = threading.Event()
    started = threading.Event()

    def ticker():
        started.set()
        while not stop.is_set():
            ticks.append(1)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    t = threading.Thread(target=ticker)
    try:
        t.start()
        started.wait()
        ticks.clear()
        dropcore.set_num_threads(1)  # a long single-threaded call
        before = len(ticks)
        dropout(x, 0.5, inplace=True, generator=dropcore.Generator(0))
        during = len(ticks) - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
        dropcore.set_num_threads(2)
    assert during > 0


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[::2],
        lambda a: a[::-1],
        lambda a: a.reshape(60, 50).T,
        lambda a: a.reshape(60, 50)[::-3, 1::2],
        lambda a: a.reshape(3, 20, 50)[:, ::-1, :],
    ],
)
def test_non_contiguous_inputs_use_the_c_order_index(make):
    base = np.random.default_rng(3).standard_normal(3000)
    x = make(base)
    snapshot = x.copy()
    got = dropout(x, 0.4, generator=dropcore.Generator(8, 11))
    np.testing.assert_array_equal(got, philox_ref.dropout(np.ascontiguousarray(x), 0.4, 8, 11))
    np.testing.assert_array_equal(x, snapshot)  # input untouched


def test_inplace_writes_into_the_input_even_when_strided():
    base = np.arange(1, 2001, dtype=np.float64)
    view = base[::-2]
    want = philox_ref.dropout(np.ascontiguousarray(view), 0.5, 4, 0)
    out = dropout(view, 0.5, inplace=True, generator=dropcore.Generator(4))
    assert out is view
    np.testing.assert_array_equal(view, want)
    np.testing.assert_array_equal(base[-2::-2], np.arange(1, 2001, 2, dtype=np.float64)[::-1])  # others untouched


def test_contiguous_input_is_not_copied_inplace_and_output_is_fresh():
    x = np.ones(1000, np.float32)
    out = dropout(x, 0.5, generator=dropcore.Generator(0))
    assert not np.shares_memory(out, x)
    assert (x == 1).all()
    y = dropout(x, 0.5, inplace=True, generator=dropcore.Generator(0))
    assert y is x
    np.testing.assert_array_equal(x, out)


def test_identity_cases_return_the_input_object():
    x = np.ones((4, 5), np.float32)
    g = dropcore.Generator(1)
    assert dropout(x, 0.5, training=False, generator=g) is x
    assert dropout(x, 0.0, generator=g) is x
    assert g.offset == 0  # identity calls draw no words


def test_p_one_drops_everything_and_non_finite_values_leave_no_nan():
    x = np.array([np.inf, -np.inf, np.nan, 1.0] * 1000, dtype=np.float32)
    y = dropout(x, 1.0, generator=dropcore.Generator(0))
    assert (y == 0).all() and not np.isnan(y).any()
    z = dropout(x, 0.5, generator=dropcore.Generator(1))
    keep = philox_ref.keep_mask(1, 0, x.size, 0.5)
    assert (z[~keep] == 0).all() and not np.isnan(z[~keep]).any()
    assert np.isnan(z[keep & np.isnan(x)]).all()


def test_vanilla_rule_scales_at_test_time():
    x = np.full(10_000, 3.0, np.float32)
    train = dropout(x, 0.25, inverted=False, generator=dropcore.Generator(2))
    assert set(np.unique(train).tolist()) == {0.0, 3.0}
    np.testing.assert_array_equal(train != 0, philox_ref.keep_mask(2, 0, x.size, 0.25))
    test = dropout(x, 0.25, training=False, inverted=False)
    assert test.dtype == np.float32
    np.testing.assert_array_equal(test, np.full(10_000, np.float32(0.75) * 3.0, np.float32))


def test_shapes_and_dtypes_are_preserved():
    for shape in [(), (1,), (3, 4, 5), (2, 1, 0, 3), (7, 1)]:
        for dtype in (np.float32, np.float64):
            x = np.ones(shape, dtype)
            y = dropout(x, 0.5, generator=dropcore.Generator(0))
            assert y.shape == shape and y.dtype == dtype


def test_zero_size_arrays_work_and_draw_nothing():
    g = dropcore.Generator(0)
    x = np.zeros((0, 3), np.float32)
    assert dropout(x, 0.5, generator=g).shape == (0, 3)
    assert dropout(x, 0.5, inplace=True, generator=g) is x
    assert g.offset == 0


def test_big_endian_input_is_handled():
    x = np.arange(100, dtype=">f4")
    got = dropout(x, 0.5, generator=dropcore.Generator(6))
    np.testing.assert_array_equal(got, philox_ref.dropout(x.astype(np.float32), 0.5, 6, 0))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf")])
def test_bad_probability_is_a_value_error_naming_it(p):
    x = np.ones(10, np.float32)
    with pytest.raises(ValueError, match="between 0 and 1, but got"):
        dropout(x, p)
    with pytest.raises(ValueError, match="1.5"):
        dropout(x, 1.5)
    assert (x == 1).all()


@pytest.mark.parametrize(
    "x",
    [
        np.ones(4, np.int32),
        np.ones(4, np.int64),
        np.ones(4, bool),
        np.ones(4, np.complex64),
        np.array([1.0, None], dtype=object),
        np.ones(4, np.float16),
        [1.0, 2.0],
    ],
)
def test_non_float_inputs_are_type_errors(x):
    with pytest.raises(TypeError):
        dropout(x, 0.5)


def test_read_only_inplace_is_a_value_error_and_leaves_input_untouched():
    x = np.ones(100, np.float32)
    x.flags.writeable = False
    g = dropcore.Generator(0)
    with pytest.raises(ValueError, match="read-only"):
        dropout(x, 0.5, inplace=True, generator=g)
    assert (x == 1).all() and g.offset == 0
    # Out of place on a read-only array is fine.
    assert dropout(x, 0.5, generator=g).shape == x.shape


def test_binding_rejects_bad_dtype_and_p_directly():
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.dropout(np.ones(3, np.int8), 0.5, 0, 0)
    with pytest.raises(ValueError, match="but got 2"):
        _core.dropout(np.ones(3, np.float32), 2.0, 0, 0)


def test_rust_panic_surfaces_as_a_python_exception():
    with pytest.raises(BaseException, match="boom"):
        _core._panic_for_tests("boom")
    # The interpreter and the pool still work afterwards.
    assert dropout(np.ones(100_000, np.float32), 0.5, generator=dropcore.Generator(0)).shape == (100_000,)


def test_set_num_threads_rejects_nonsense():
    with pytest.raises(ValueError):
        dropcore.set_num_threads(0)
    with pytest.raises(TypeError):
        dropcore.set_num_threads(1.5)


def test_env_var_sets_the_thread_count(tmp_path):
    import subprocess

    code = "import dropcore; print(dropcore.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**__import__("os").environ, "DROPCORE_NUM_THREADS": "3"},
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "3"


_ISA_CHECK = r"""
import sys, numpy as np, dropcore, dropcore.dropout
from dropcore import _core
x = np.random.default_rng(0).standard_normal(300_001).astype(np.float32)
p_tie = float(sys.argv[2])
parts = []
for threads in (1, 2):
    dropcore.set_num_threads(threads)
    parts.append(dropcore.dropout.dropout(x, 0.3, generator=dropcore.Generator(77, 5)))
    for phase in (0, 1):
        parts.append(_core.dropout(x, p_tie, 9, 2**33 + 1, True, False, None, phase))
        parts.append(_core.bernoulli_map(x.astype(np.float64), p_tie, 1.5, 0.25, -2.0, 9, 3, None, None, phase))
    parts.append(dropcore.dropout.gaussian_dropout(x, 0.3, generator=dropcore.Generator(78)))
np.save(sys.argv[1], np.concatenate([q.astype(np.float64) for q in parts]))
print(_core.simd_isa())
"""


def _isa_modes():
    """DROPCORE_SIMD values this CPU can run, besides the default."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        pass
    modes = ["off"]
    if " avx2" in flags:
        modes.append("avx2")
    if " avx512f" in flags:
        modes.append("avx512")
    return modes


def test_scalar_and_simd_paths_agree(tmp_path):
    """Every ISA path, thread count and phase gives the same bits (ties included)."""
    import os
    import subprocess

    seed, offset, n = 9, 2**33 + 1, 300_001
    u = philox_ref.lanes(seed, offset, n, 1)
    t = (int(u[12345]) << 16) | 0x7FFF  # a forced tie: T_hi is the lane of element 12345
    p_tie = 1.0 - t / 2.0**32
    assert philox_ref.tie_count(seed, offset, n, p_tie, 1) >= 1
    results, isas = {}, {}
    for mode in _isa_modes() + [""]:
        path = tmp_path / f"{mode or 'auto'}.npy"
        out = subprocess.run(
            [sys.executable, "-c", _ISA_CHECK, str(path), repr(p_tie)], env={**os.environ, "DROPCORE_SIMD": mode},
            capture_output=True, text=True, check=True,
        )
        isas[mode] = out.stdout.strip()
        results[mode] = np.load(path)
    assert isas["off"] == "scalar"
    if "avx2" in isas:
        assert isas["avx2"] == "avx2"
    if "avx512" in isas:
        assert isas["avx512"] == "avx512"
    for mode, r in results.items():
        np.testing.assert_array_equal(r, results["off"], err_msg=f"DROPCORE_SIMD={mode!r}")
    # ... and the scalar path is the reference itself.
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    ref = results["off"]
    np.testing.assert_array_equal(ref[:n], philox_ref.dropout(x, 0.3, 77, 5))
    np.testing.assert_array_equal(ref[n : 2 * n], philox_ref.dropout(x, p_tie, seed, offset, 0))
    np.testing.assert_array_equal(ref[3 * n : 4 * n], philox_ref.dropout(x, p_tie, seed, offset, 1))


# ----------------------------------------------------------------------------- contract v2
@pytest.mark.parametrize("n", [0, 1, 2, 3, 1001, 70_000])
def test_generator_advances_by_half_the_elements(n):
    g = dropcore.Generator(1, 10)
    dropout(np.ones(n, np.float32), 0.5, generator=g)
    assert g.offset == 10 + (n + 1) // 2


def test_ties_in_millions_of_elements_match_the_reference():
    """About one element in 65,536 has its lane equal to T_hi and needs its tie word."""
    n, seed, offset, p = 4_000_000, 31, 7, 0.3
    t = philox_ref.threshold(p)
    assert t & 0xFFFF != 0  # ties are decided by the tie word at this p
    ties = philox_ref.tie_count(seed, offset, n, p)
    assert ties > 20
    x = np.ones(n, np.float32)
    got = dropout(x, p, generator=dropcore.Generator(seed, offset))
    keep = philox_ref.keep_mask(seed, offset, n, p)
    np.testing.assert_array_equal(got != 0, keep)
    # The ties go both ways, so a kernel ignoring the tie word (or always using it) fails.
    u = philox_ref.lanes(seed, offset, n)
    tied = u == (t >> 16)
    assert 0 < int(keep[tied].sum()) < ties
    assert np.array_equal(got[~tied] != 0, u[~tied] < (t >> 16))


@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("index", [0, 1, 255, 256, 4097, 199_998])
def test_a_forced_t_hi_settles_the_tie_by_the_tie_word(phase, index):
    """Choose p so that T_hi is the lane of element ``index``, with T_lo on either side
    of its tie lane: only the tie word can get that element right."""
    seed, offset, n = 5, 11, 200_003
    u = int(philox_ref.lanes(seed, offset, n, phase)[index])
    h = 2 * offset + phase + index
    v = int(philox_ref.tie_words(seed, h // 2, 1)[0] >> (16 * (h % 2))) & 0xFFFF
    x = np.ones(n, np.float64)
    for t_lo, kept in [(v + 1, True), (v, False)]:
        if not 1 <= t_lo <= 0xFFFF:
            continue
        p = 1.0 - ((u << 16) | t_lo) / 2.0**32
        got = _core.dropout(x, p, seed, offset, True, False, None, phase)
        assert (got[index] != 0) == kept
        np.testing.assert_array_equal(got, philox_ref.dropout(x, p, seed, offset, phase))


def test_phase_one_starts_in_the_high_half_of_the_first_word():
    x = np.random.default_rng(4).standard_normal(10_001)
    whole = _core.dropout(x, 0.4, 3, 100)
    # element g of the whole call is element g - k of a call at (100 + k // 2, k % 2)
    for k in (1, 2, 3, 4097, 9_999):
        part = _core.dropout(x[k:].copy(), 0.4, 3, 100 + k // 2, True, False, None, k % 2)
        np.testing.assert_array_equal(part, whole[k:])
    np.testing.assert_array_equal(
        _core.dropout(x, 0.4, 3, 100, True, False, None, 1), philox_ref.dropout(x, 0.4, 3, 100, phase=1)
    )
    # in place and out= honour the phase too
    y = x.copy()
    _core.dropout(y, 0.4, 3, 100, True, True, None, 1)
    buf = np.empty_like(x)
    _core.dropout(x, 0.4, 3, 100, True, False, buf, 1)
    np.testing.assert_array_equal(y, philox_ref.dropout(x, 0.4, 3, 100, phase=1))
    np.testing.assert_array_equal(buf, y)


def test_chunkings_at_any_element_reproduce_the_whole_call():
    """What a Dask block does: a run starting at global element g uses offset o + g // 2
    and phase g % 2, for cut points on both odd and even elements, across threads."""
    x = np.random.default_rng(6).standard_normal(400_003).astype(np.float32)
    before = dropcore.get_num_threads()
    try:
        for threads in (1, 2, 3):
            dropcore.set_num_threads(threads)
            whole = _core.dropout(x, 0.25, 8, 13)
            cuts = [0, 1, 2, 131_073, 262_144, 262_145, 400_003]
            pieces = [
                _core.dropout(x[a:b].copy(), 0.25, 8, 13 + a // 2, True, False, None, a % 2)
                for a, b in zip(cuts, cuts[1:])
            ]
            np.testing.assert_array_equal(np.concatenate(pieces), whole)
    finally:
        dropcore.set_num_threads(before)
    np.testing.assert_array_equal(whole, philox_ref.dropout(x, 0.25, 8, 13))


def test_alpha_binding_takes_a_phase():
    x = np.random.default_rng(7).standard_normal(999)
    got = _core.bernoulli_map(x, 0.3, 2.0, 0.5, -1.0, 4, 6, None, None, 1)
    keep = philox_ref.keep_mask(4, 6, x.size, 0.3, phase=1)
    np.testing.assert_array_equal(got, np.where(keep, 2.0 * x + 0.5, -1.0))


@pytest.mark.parametrize("call", [
    lambda x: _core.dropout(x, 0.5, 0, 0, True, False, None, 2),
    lambda x: _core.bernoulli_map(x, 0.5, 1.0, 0.0, 0.0, 0, 0, None, None, 2),
    lambda x: _core.bernoulli_map(x, 0.5, 1.0, 0.0, 0.0, 0, 0, 2, None, 1),
])
def test_bad_phase_is_a_value_error(call):
    x = np.ones(4)
    with pytest.raises(ValueError, match="phase"):
        call(x)
    assert (x == 1).all()


def test_out_buffer_receives_the_result():
    x = np.random.default_rng(2).standard_normal((300, 7)).astype(np.float32)
    buf = np.full_like(x, 9.0)
    got = dropout(x, 0.3, generator=dropcore.Generator(12), out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, philox_ref.dropout(x, 0.3, 12, 0))
    # Strided input into an out buffer, and out=x meaning in place.
    xs = x[::-1]
    dropout(xs, 0.3, generator=dropcore.Generator(12), out=buf)
    np.testing.assert_array_equal(buf, philox_ref.dropout(np.ascontiguousarray(xs), 0.3, 12, 0))
    y = x.copy()
    assert dropout(y, 0.3, generator=dropcore.Generator(12), out=y) is y
    np.testing.assert_array_equal(y, philox_ref.dropout(x, 0.3, 12, 0))


@pytest.mark.parametrize(
    "make_out,err",
    [
        (lambda x: np.empty((3, 4), np.float32), ValueError),
        (lambda x: np.empty_like(x, dtype=np.float64), ValueError),
        (lambda x: x[::-1], ValueError),
        (lambda x: [0.0] * x.size, TypeError),
    ],
)
def test_bad_out_buffers_are_rejected(make_out, err):
    x = np.ones(12, np.float32)
    g = dropcore.Generator(0)
    with pytest.raises(err):
        dropout(x, 0.5, generator=g, out=make_out(x))
    assert (x == 1).all() and g.offset == 0


def test_binding_reports_shape_mismatch_with_both_shapes():
    with pytest.raises(ValueError, match=r"\[3\].*\[4\]"):
        _core.dropout(np.ones(4, np.float32), 0.5, 0, 0, True, False, np.ones(3, np.float32))


def _child_dropout(queue):
    x = np.ones(500_000, np.float32)
    queue.put(dropout(x, 0.5, generator=dropcore.Generator(3)).sum())


def test_the_thread_pool_survives_fork():
    import multiprocessing as mp

    # Use the pool in the parent first, so a forked child inherits a dead one.
    x = np.ones(500_000, np.float32)
    want = dropout(x, 0.5, generator=dropcore.Generator(3)).sum()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_dropout, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == want
