"""Regression tests for issue 10 (hardening), one per defect, named after it.

Each test fails on the code before the fix: a crash, a silent wrong result, a word
drawn by a call that then failed, or an error of the wrong type. Masks are checked
against the independent NumPy Philox in ``tests/philox_ref.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import dropcore
import dropcore.nn.functional as F
import philox_ref
from dropcore import _core, nn

U64 = (1 << 64) - 1


def element_words(n: int) -> int:
    """Words an element-dropout call on ``n`` elements consumes (whatever the contract)."""
    words_for = getattr(philox_ref, "words_for", None)
    return words_for(n) if words_for else n


def run_python(code: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a crash there cannot take pytest down).

    ``env`` is laid over this process's environment; a value of ``None`` unsets that variable.
    """
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={k: v for k, v in merged.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_untouched(x_before, x, gen_state, gen, out_before=None, out=None):
    np.testing.assert_array_equal(x, x_before)
    assert gen.get_state() == gen_state
    if out is not None:
        np.testing.assert_array_equal(out, out_before)


# ----------------------------------------------------------------------------- crashes
def test_rand_2_to_40_raises_memory_error_instead_of_aborting():
    r = run_python(
        """
        import dropcore
        g = dropcore.Generator(1)
        try:
            dropcore.rand(2**40, generator=g)
        except MemoryError:
            print("MemoryError", g.offset)
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "MemoryError"


def test_rand_2_to_62_raises_memory_error_not_panic_exception():
    with pytest.raises(MemoryError):
        dropcore.rand(2**62)
    with pytest.raises(MemoryError):
        _core.philox_words(0, 0, 2**62)


def test_rand_2_to_33_squared_raises_memory_error_not_a_reshape_error():
    with pytest.raises(MemoryError):
        dropcore.rand(2**33, 2**33)


def test_philox_words_past_the_end_of_the_stream_raise_overflow_error():
    with pytest.raises(OverflowError):
        _core.philox_words(5, U64, 2)
    # Word 2**64 - 1 itself is usable.
    np.testing.assert_array_equal(_core.philox_words(5, U64, 1), philox_ref.words(5, U64, 1))
    np.testing.assert_array_equal(_core.philox_words(5, U64 - 6, 7), philox_ref.words(5, U64 - 6, 7))


def test_set_num_threads_2_to_63_is_a_value_error_not_thousands_of_threads():
    before = dropcore.get_num_threads()
    cap = dropcore.max_num_threads()
    assert cap >= 16
    for n in (2**63, 2**64 + 5, cap + 1):
        with pytest.raises(ValueError, match="between 1 and"):
            dropcore.set_num_threads(n)
    with pytest.raises(ValueError):
        _core.set_num_threads(cap + 1)
    with pytest.raises(TypeError):
        dropcore.set_num_threads(True)
    assert dropcore.get_num_threads() == before


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_set_num_threads_is_lazy_and_starts_no_thread_itself():
    r = run_python(
        """
        import os, numpy as np, dropcore
        n = lambda: len(os.listdir("/proc/self/task"))
        start = n()
        cap = dropcore.max_num_threads()
        for k in range(200):                      # was: a pool built per call
            dropcore.set_num_threads(cap if k % 2 else 1)
        after_set = n()
        dropcore.set_num_threads(3)
        dropcore.nn.functional.dropout(np.ones(1 << 20, np.float32), 0.5)
        print(start, after_set, n())
        """
    )
    assert r.returncode == 0, r.stderr
    start, after_set, after_call = map(int, r.stdout.split())
    assert after_set == start  # recording a count starts nothing
    assert after_call >= start + 3  # the first parallel call builds the 3-thread pool


def test_dropcore_num_threads_100000_warns_once_and_falls_back_to_the_cpu_count(tmp_path):
    r = run_python(
        """
        import warnings, numpy as np
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as w:
            import dropcore
        import dropcore.nn.functional as F
        g = dropcore.Generator(3)
        y = F.dropout(np.ones(1 << 18, np.float32), 0.5, generator=g)
        print(len(w), dropcore.get_num_threads(), g.offset)
        print(w[0].message)
        np.save(OUT, y)
        """.replace("OUT", repr(str(tmp_path / "y.npy"))),
        env={"DROPCORE_NUM_THREADS": "100000"},
    )
    assert r.returncode == 0, r.stderr
    count, threads, offset = map(int, r.stdout.splitlines()[0].split())
    default = run_python("import dropcore; print(dropcore.get_num_threads())", env={"DROPCORE_NUM_THREADS": ""})
    assert count == 1 and threads == int(default.stdout)
    assert offset == element_words(1 << 18)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), philox_ref.dropout(np.ones(1 << 18, np.float32), 0.5, 3, 0))
    assert "DROPCORE_NUM_THREADS='100000' ignored" in r.stdout


@pytest.mark.parametrize("value", ["lots", "0", "-3", "2.5"])
def test_invalid_dropcore_num_threads_values_warn(value):
    r = run_python(
        "import warnings; warnings.simplefilter('error')\nimport dropcore",
        env={"DROPCORE_NUM_THREADS": value},
    )
    assert r.returncode != 0 and "RuntimeWarning" in r.stderr and "DROPCORE_NUM_THREADS" in r.stderr


def test_dropcore_simd_bogus_warns_once_at_import():
    code = """
        import warnings
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as w:
            import dropcore
            import dropcore.nn.functional
        print(len(w)); print(w[0].message if w else "")
        """
    r = run_python(code, env={"DROPCORE_SIMD": "bogus"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "1" and "DROPCORE_SIMD='bogus' ignored" in r.stdout
    quiet = run_python(code, env={"DROPCORE_SIMD": "off"})
    assert quiet.stdout.splitlines()[0] == "0"
    # What this CPU can run, asked without DROPCORE_SIMD (the suite itself may run pinned
    # to a lower path, e.g. DROPCORE_SIMD=avx2 on an AVX-512 CPU).
    best = run_python("import dropcore._core as c; print(c.simd_isa())", env={"DROPCORE_SIMD": None}).stdout.strip()
    if best != "avx512":  # a CPU without AVX-512 asked for it
        r = run_python(code, env={"DROPCORE_SIMD": "avx512"})
        assert "which this CPU cannot run" in r.stdout


def test_fork_while_another_thread_toggles_the_pool_does_not_deadlock():
    r = run_python(
        """
        import os, threading, numpy as np, dropcore
        import dropcore.nn.functional as F
        x = np.ones(1 << 18, np.float32)
        stop = threading.Event()
        def toggle():
            k = 0
            while not stop.is_set():
                dropcore.set_num_threads(1 + k % 3)
                F.dropout(x, 0.5)          # builds a pool under the lock
                k += 1
        t = threading.Thread(target=toggle); t.start()
        for i in range(30):
            pid = os.fork()
            if pid == 0:
                y = F.dropout(x, 0.5, generator=dropcore.Generator(i))   # parallel in the child
                os._exit(0 if y.shape == x.shape else 3)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
        stop.set(); t.join()
        print("ok")
        """,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ----------------------------------------------------------------------------- silent corruption
def _overlapping_views():
    base = np.arange(1, 9, dtype=np.float32)
    yield np.lib.stride_tricks.as_strided(base, (8,), (0,))
    yield np.lib.stride_tricks.as_strided(base, (4, 3), (4, 4))  # rows overlap
    a, b = np.broadcast_arrays(np.arange(3, dtype=np.float64)[None, :], np.zeros((4, 1)))
    a.flags.writeable = True  # numpy allows it (deprecated warning on some versions)
    yield a


def _inplace_family():
    return [
        lambda x, g: F.dropout(x, 0.5, inplace=True, generator=g),
        lambda x, g: F.dropout(dropcore.from_numpy(x), 0.5, inplace=True, generator=g),
        lambda x, g: F.alpha_dropout(x, 0.5, training=True, inplace=True, generator=g),
        lambda x, g: F.feature_alpha_dropout(x.reshape(x.shape[0], -1), 0.5, True, True, generator=g),
        lambda x, g: F.dropout1d(x.reshape(x.shape[0], -1), 0.5, inplace=True, generator=g),
    ]


def test_inplace_on_self_overlapping_views_is_refused_and_out_of_place_still_works():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        views = list(_overlapping_views())
    for view in views:
        for fn in _inplace_family():
            before = view.copy()
            g = dropcore.Generator(4)
            with pytest.raises(ValueError, match="share memory"):
                fn(view, g)
            assert_untouched(before, view, (4, 0), g)
        # Out of place reads the view's logical values and matches the reference.
        y = F.dropout(view, 0.5, generator=dropcore.Generator(4))
        np.testing.assert_array_equal(y, philox_ref.dropout(np.ascontiguousarray(view), 0.5, 4, 0))


def test_self_overlap_test_is_exact_for_interleaved_strides():
    from dropcore.dropout import _self_overlapping

    buf = np.zeros(64, np.float32)
    # offsets a*8 + b*12 bytes for a < 3, b < 2: {0, 8, 16, 12, 20, 28}: no overlap
    v = np.lib.stride_tricks.as_strided(buf, (3, 2), (8, 12))
    assert not _self_overlapping(v)
    y = F.dropout(v, 0.5, inplace=True, generator=dropcore.Generator(9))
    assert y is v
    w = np.lib.stride_tricks.as_strided(buf, (3, 2), (4, 8))  # 4 + 0 == 0 + ... offsets 0,4,8 / 8,12,16: 8 twice
    assert _self_overlapping(w)
    assert not _self_overlapping(np.ones((3, 4))[:, ::2]) and not _self_overlapping(np.ones(5)[::-1])


def _as4d(a):
    """(6, 5) -> (6, 5, 1, 1), a view of an ndarray or a reshaped Tensor."""
    return a.reshape(6, 5, 1, 1)


def _as_blocks(a):
    return a.reshape(6, 1, 5, 1)


FAMILY_OUT = [
    ("dropout", lambda x, g, **k: F.dropout(x, 0.3, generator=g, **k)),
    ("dropout1d", lambda x, g, **k: F.dropout1d(x, 0.3, generator=g, **k)),
    ("dropout2d", lambda x, g, out=None: F.dropout2d(_as4d(x), 0.3, generator=g, out=None if out is None else _as4d(out))),
    ("alpha_dropout", lambda x, g, **k: F.alpha_dropout(x, 0.3, True, generator=g, **k)),
    ("feature_alpha_dropout", lambda x, g, **k: F.feature_alpha_dropout(x, 0.3, True, generator=g, **k)),
    ("gaussian_dropout", lambda x, g, **k: F.gaussian_dropout(x, 0.3, generator=g, **k)),
    ("gaussian_noise", lambda x, g, **k: F.gaussian_noise(x, 0.3, generator=g, **k)),
    ("drop_path", lambda x, g, **k: F.drop_path(x, 0.3, True, generator=g, **k)),
    ("drop_block2d", lambda x, g, out=None: F.drop_block2d(_as_blocks(x), 0.3, 1, generator=g,
                                                           out=None if out is None else _as_blocks(out))),
]


@pytest.mark.parametrize("name,fn", FAMILY_OUT, ids=[n for n, _ in FAMILY_OUT])
def test_out_is_honoured_the_same_way_by_every_function_of_the_family(name, fn):
    x = np.random.default_rng(1).standard_normal((6, 5))
    want = fn(x, dropcore.Generator(8))
    out = np.full_like(x, 7.0)
    got = fn(x, dropcore.Generator(8), out=out)
    assert np.shares_memory(got, out)
    np.testing.assert_array_equal(out, want.reshape(out.shape))
    # A Tensor input with out= is refused, before any word is drawn.
    g = dropcore.Generator(8)
    with pytest.raises(TypeError, match="out= is for NumPy arrays"):
        fn(dropcore.tensor(x), g, out=out)
    assert g.offset == 0
    # An out that overlaps the input is refused; so is a read-only one.
    with pytest.raises(ValueError, match="overlap"):
        fn(x, g, out=x[::-1])
    ro = np.zeros_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fn(x, g, out=ro)
    assert g.offset == 0


INPLACE_FAMILY = [
    ("dropout", (2, 3, 4, 5), lambda x, g, **k: F.dropout(x, 0.3, generator=g, **k)),
    ("dropout1d", (2, 3, 20), lambda x, g, **k: F.dropout1d(x, 0.3, generator=g, **k)),
    ("dropout2d", (2, 3, 4, 5), lambda x, g, **k: F.dropout2d(x, 0.3, generator=g, **k)),
    ("dropout3d", (2, 3, 4, 5), lambda x, g, **k: F.dropout3d(x, 0.3, generator=g, **k)),
    ("alpha_dropout", (2, 3, 4, 5), lambda x, g, **k: F.alpha_dropout(x, 0.3, True, generator=g, **k)),
    ("feature_alpha_dropout", (2, 3, 4, 5), lambda x, g, **k: F.feature_alpha_dropout(x, 0.3, True, generator=g, **k)),
    ("drop_block2d", (2, 3, 4, 5), lambda x, g, **k: F.drop_block2d(x, 0.3, 2, generator=g, **k)),
]


@pytest.mark.parametrize("name,shape,fn", INPLACE_FAMILY, ids=[n for n, _, _ in INPLACE_FAMILY])
def test_inplace_and_out_mean_the_same_in_every_function_of_the_family(name, shape, fn):
    x0 = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    want = fn(x0.copy(), dropcore.Generator(9))
    # inplace=True overwrites the input and returns it ...
    x = x0.copy()
    assert fn(x, dropcore.Generator(9), inplace=True) is x
    np.testing.assert_array_equal(x, want)
    # ... and so does out=input ...
    x = x0.copy()
    assert fn(x, dropcore.Generator(9), out=x) is x
    np.testing.assert_array_equal(x, want)
    # ... while inplace=True with another out names two destinations: refused, nothing written.
    x, out, g = x0.copy(), np.zeros_like(x0), dropcore.Generator(9)
    with pytest.raises(ValueError, match="two destinations"):
        fn(x, g, inplace=True, out=out)
    assert_untouched(x0, x, (9, 0), g, np.zeros_like(x0), out)
    # Strided, byte-swapped in-place targets work through a copy.
    big = np.zeros(shape[:-1] + (2 * shape[-1],), ">f4")
    view = big[..., ::2]
    view[...] = x0
    assert fn(view, dropcore.Generator(9), inplace=True) is view
    np.testing.assert_array_equal(view, want)
    assert (big[..., 1::2] == 0).all()
    # A Tensor outside autograd is changed in place too, and returned.
    t = dropcore.from_numpy(x0.copy())
    assert fn(t, dropcore.Generator(9), inplace=True) is t
    np.testing.assert_array_equal(t.numpy(), want)


def test_generator_take_rejects_floats_and_never_wraps_past_2_to_64():
    g = dropcore.Generator(1)
    for bad in (1.5, "3", True, None):
        with pytest.raises(TypeError):
            g.take(bad)
    assert g.offset == 0 and isinstance(g.offset, int)
    g.take(np.int64(5))
    assert g.offset == 5 and type(g.offset) is int
    g = dropcore.Generator(1, offset=U64 - 1)
    assert g.take(np.uint64(1)) == (1, U64 - 1)
    assert g.take(1) == (1, U64)  # word 2**64 - 1 is usable
    assert g.offset == 1 << 64
    with pytest.raises(OverflowError):
        g.take(1)
    assert g.offset == 1 << 64 and g.take(0) == (1, 1 << 64)
    with pytest.raises(OverflowError):
        dropcore.Generator(1, offset=10).take(np.uint64(U64))
    for bad_state in ((1, -1), (1, (1 << 64) + 1), (1, 2.0), (-1, 0)):
        with pytest.raises((ValueError, TypeError)):
            dropcore.Generator().set_state(bad_state)
    with pytest.raises(ValueError):
        dropcore.Generator(0, offset=-1)


def test_dropout_near_the_end_of_the_stream_uses_the_last_words_then_overflows():
    n = 10
    k = element_words(n)
    g = dropcore.Generator(6, offset=(1 << 64) - k)
    x = np.ones(n)
    y = F.dropout(x, 0.5, generator=g)
    np.testing.assert_array_equal(y != 0, philox_ref.keep_mask(6, (1 << 64) - k, n, 0.5))
    before = x.copy()
    with pytest.raises(OverflowError):
        F.dropout(x, 0.5, inplace=True, generator=g)
    np.testing.assert_array_equal(x, before)


def test_binding_refuses_out_overlapping_the_input_through_two_frombuffer_views():
    buf = bytearray(4 * 300_001)
    a = np.frombuffer(buf, np.float32, count=300_000)
    b = np.frombuffer(buf, np.float32, count=300_000, offset=4)
    a[...] = 1.0
    for call in (
        lambda: _core.dropout(a, 0.5, 0, 0, True, False, b),
        lambda: _core.bernoulli_map(a, 0.5, 2.0, 0.0, 0.0, 0, 0, None, b),
        lambda: _core.gaussian_map(a, 0.5, True, 0, 0, b),
    ):
        with pytest.raises(ValueError, match="overlap"):
            call()
    assert (a == 1.0).all()
    # Disjoint views of one buffer are fine.
    c = np.frombuffer(buf, np.float32, count=1000)
    d = np.frombuffer(buf, np.float32, count=1000, offset=4 * 1000)
    _core.dropout(c, 0.5, 3, 0, True, False, d)
    np.testing.assert_array_equal(d, philox_ref.dropout(np.ones(1000, np.float32), 0.5, 3, 0))


# ----------------------------------------------------------------------------- unclear errors, words drawn by failing calls
def _unaligned(n: int, dtype=np.float32) -> np.ndarray:
    buf = bytearray(n * np.dtype(dtype).itemsize + 1)
    a = np.frombuffer(buf, dtype, count=n, offset=1)
    assert not a.flags.aligned and a.flags.c_contiguous
    return a


def test_unaligned_c_contiguous_inputs_work_by_copy_in_and_out():
    x = np.random.default_rng(3).standard_normal(1001).astype(np.float32)
    u = _unaligned(1001)
    u[...] = x
    g = dropcore.Generator(12)
    np.testing.assert_array_equal(F.dropout(u, 0.4, generator=g), philox_ref.dropout(x, 0.4, 12, 0))
    assert g.offset == element_words(1001)
    out = _unaligned(1001)
    F.dropout(x, 0.4, generator=dropcore.Generator(12), out=out)
    np.testing.assert_array_equal(out, philox_ref.dropout(x, 0.4, 12, 0))
    with pytest.raises(ValueError, match="aligned"):
        _core.dropout(u, 0.4, 12, 0)  # the binding refuses instead of misreading


@pytest.mark.parametrize("fn", [F.dropout1d, F.dropout2d, F.dropout3d])
def test_big_endian_channel_dropout_with_a_same_dtype_out_works(fn):
    shape = {F.dropout1d: (2, 3, 4), F.dropout2d: (2, 3, 4, 2), F.dropout3d: (2, 3, 2, 2, 2)}[fn]
    x = np.random.default_rng(4).standard_normal(shape).astype(">f8")
    want = fn(x.astype("<f8"), 0.5, generator=dropcore.Generator(13))
    out = np.zeros(shape, ">f8")
    got = fn(x, 0.5, generator=dropcore.Generator(13), out=out)
    assert got is out and out.dtype == np.dtype(">f8")
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(fn(x, 0.5, generator=dropcore.Generator(13)), want)


def test_inplace_tensor_dropout_on_read_only_data_raises_before_drawing():
    data = np.ones((4, 4), np.float32)
    data.flags.writeable = False
    t = dropcore.from_numpy(data)
    g = dropcore.Generator(14)
    with pytest.raises(ValueError, match="read-only"):
        F.dropout(t, 0.5, inplace=True, generator=g)
    assert g.offset == 0 and (data == 1).all()


def test_dropconnect_linear_on_ndarrays_works_and_checks_before_drawing():
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    for per_sample in (False, True):
        y = F.dropconnect_linear(x, w, b, 0.5, per_sample=per_sample, generator=dropcore.Generator(15))
        t = F.dropconnect_linear(dropcore.Tensor(x), dropcore.Tensor(w), dropcore.Tensor(b), 0.5,
                                 per_sample=per_sample, generator=dropcore.Generator(15))
        assert isinstance(y, np.ndarray)
        np.testing.assert_array_equal(y, t.detach().numpy())
    # Shared mask: y = x (M * W / (1-p))^T + b with M from the element-dropout words.
    want = x @ philox_ref.dropout(w, 0.5, 15, 0).T + b
    np.testing.assert_allclose(F.dropconnect_linear(x, w, b, 0.5, generator=dropcore.Generator(15)), want, rtol=1e-12)
    g = dropcore.Generator(15)
    for bad, err in (
        (lambda: F.dropconnect_linear(x, w.astype(np.float32), b, 0.5, generator=g), TypeError),
        (lambda: F.dropconnect_linear(x, w.T, b, 0.5, generator=g), ValueError),
        (lambda: F.dropconnect_linear(x, w, b[:1], 0.5, per_sample=True, generator=g), ValueError),
        (lambda: F.dropconnect_linear(x.astype(int), w, b, 0.5, generator=g), TypeError),
    ):
        with pytest.raises(err):
            bad()
        assert g.offset == 0


def test_string_and_bool_arguments_are_type_errors_everywhere():
    x = np.ones((2, 3, 4, 4), np.float32)
    for p in ("0.5", True, None, [0.5]):
        for fn in (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
                   F.gaussian_dropout, F.drop_path):
            with pytest.raises(TypeError, match="real number"):
                fn(x[0] if fn is F.dropout1d else x, p)
        with pytest.raises(TypeError):
            F.drop_block2d(x, p, 2)
        for module in (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.GaussianDropout, nn.DropPath):
            with pytest.raises(TypeError, match="real number"):
                module(p)
    with pytest.raises(TypeError, match="real number"):
        nn.Dropout("0.25")
    with pytest.raises(TypeError, match="stddev"):
        F.gaussian_noise(x, stddev="1.0")
    with pytest.raises(TypeError, match="stddev"):
        nn.GaussianNoise("1.0")
    with pytest.raises(TypeError, match="block_size"):
        F.drop_block2d(x, 0.1, block_size=True)
    with pytest.raises(TypeError, match="block_size"):
        F.drop_block2d(x, 0.1, block_size=2.0)
    with pytest.raises(TypeError, match="block_size"):
        nn.DropBlock2d(0.1, block_size=True)
    # Real numbers of any kind are fine.
    assert F.dropout(x, np.float32(0.0)) is x and F.dropout(x, 0) is x
    assert nn.Dropout(np.float64(0.25)).p == 0.25
    assert F.drop_block2d(x, 0.1, np.int64(2), generator=dropcore.Generator(0)).shape == x.shape


BAD_CALLS = [
    ("p too big", lambda x, g, o: F.dropout(x, 1.5, generator=g), ValueError),
    ("p str", lambda x, g, o: F.dropout1d(x, "0.5", generator=g), TypeError),
    ("int out", lambda x, g, o: F.dropout(x, 0.5, generator=g, out=o.astype(np.int32)), ValueError),
    ("out shape", lambda x, g, o: F.dropout2d(x, 0.5, generator=g, out=o[:1]), ValueError),
    ("out list", lambda x, g, o: F.alpha_dropout(x, 0.5, True, generator=g, out=o.tolist()), TypeError),
    ("read-only out", lambda x, g, o: F.gaussian_noise(x, 1.0, generator=g, out=_read_only(o)), ValueError),
    ("two destinations", lambda x, g, o: F.dropout3d(x, 0.5, True, True, generator=g, out=o), ValueError),
    ("block too big", lambda x, g, o: F.drop_block2d(x, 0.5, 9, generator=g, out=o), ValueError),
    ("dropout1d rank", lambda x, g, o: F.dropout1d(x, 0.5, generator=g, out=o), RuntimeError),
    ("stddev nan", lambda x, g, o: F.gaussian_noise(x, float("nan"), generator=g, out=o), ValueError),
    ("gaussian p=1", lambda x, g, o: F.gaussian_dropout(x, 1.0, generator=g, out=o), ValueError),
    ("generator", lambda x, g, o: F.dropout(x, 0.5, generator=np.random.default_rng(0), out=o), TypeError),
]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("name,call,err", BAD_CALLS, ids=[n for n, _, _ in BAD_CALLS])
def test_a_failed_call_leaves_input_out_and_generator_untouched(name, call, err):
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5)).astype(np.float32)
    out = np.full_like(x, 3.0)
    x0, out0 = x.copy(), out.copy()
    g = dropcore.Generator(16, 7)
    with pytest.raises(err):
        call(x, g, out)
    assert_untouched(x0, x, (16, 7), g, out0, out)


def test_a_kernel_failure_after_the_draw_gives_the_words_back(monkeypatch):
    g = dropcore.Generator(17, 3)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(_core, "dropout", out_of_memory)
    # (the one-crossing fast path allocates before it draws and cannot fail after the
    # draw; declining it sends the call down the general path, whose kernel fails here;
    # dropout.py calls it through a module-level alias)
    monkeypatch.setattr(sys.modules["dropcore.dropout"], "_dropout_call", lambda *args, **kwargs: None)
    with pytest.raises(MemoryError):
        F.dropout(np.ones(10), 0.5, generator=g)
    assert g.get_state() == (17, 3)


# ----------------------------------------------------------------------------- channel rank rules (issue 9), as PyTorch 2.x
def test_dropout2d_reads_3d_input_as_n_c_l_with_pytorchs_warning():
    x = np.random.default_rng(7).standard_normal((5, 4, 3)).astype(np.float32)
    g = dropcore.Generator(18, 2)
    with pytest.warns(UserWarning, match=r"Received a 3D input to dropout2d .* interpreted as shape \(N, C, L\)"):
        y = F.dropout2d(x, 0.4, generator=g)
    assert g.offset == 2 + 20  # one word per (n, c): 5 x 4
    keep = philox_ref.words(18, 2, 20).astype(np.uint64) < np.uint64(round(0.6 * 2**32))
    want = np.where(keep.reshape(5, 4, 1), x * np.float32(1 / 0.6), 0)
    np.testing.assert_array_equal(y, want)
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        nn.Dropout2d(0.4)(dropcore.Tensor(x))


def test_dropout2d_2d_input_warns_and_drops_single_elements_like_pytorch():
    x = np.ones((6, 7))
    g = dropcore.Generator(19)
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d, which is deprecated"):
        y = F.dropout2d(x, 0.5, generator=g)
    assert g.offset == 42
    keep = philox_ref.words(19, 0, 42).astype(np.uint64) < np.uint64(2**31)
    np.testing.assert_array_equal(y, np.where(keep, 2.0, 0.0).reshape(6, 7))
    # Fewer than 2 dims: PyTorch's RuntimeError while training, the identity otherwise.
    with pytest.warns(UserWarning, match="1-D input to dropout2d"):
        with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"):
            F.dropout2d(np.ones(5), 0.5)
    with pytest.warns(UserWarning, match="1-D input to dropout2d"):
        v = np.ones(5)
        assert F.dropout2d(v, 0.5, training=False) is v


def test_dropout3d_other_ranks_warn_and_read_dim_0_as_the_channel():
    x = np.ones((3, 4, 5))
    g = dropcore.Generator(20)
    with pytest.warns(UserWarning, match="Received a 3-D input to dropout3d"):
        y = F.dropout3d(x, 0.5, generator=g)
    assert g.offset == 3  # unbatched: dim 0 is the channel
    keep = philox_ref.words(20, 0, 3).astype(np.uint64) < np.uint64(2**31)
    np.testing.assert_array_equal(y, np.where(keep[:, None, None], 2.0, 0.0) * x)
    with pytest.warns(UserWarning, match="0-D input to dropout3d"):
        with pytest.raises(RuntimeError, match="Feature dropout"):
            F.dropout3d(np.ones(()), 0.5)


def test_dropout1d_wrong_rank_is_pytorchs_runtime_error_even_in_eval():
    for shape in ((5,), (2, 3, 4, 5)):
        with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
            F.dropout1d(np.ones(shape), 0.5, training=False)


def test_feature_alpha_dropout_needs_2_dims_only_while_training():
    v = np.ones(4)
    assert F.feature_alpha_dropout(v, 0.5, training=False) is v
    with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"):
        F.feature_alpha_dropout(v, 0.5, training=True)


def test_no_public_call_raises_panic_exception_for_zero_size_or_huge_shapes():
    for shape in ((0,), (0, 3), (3, 0, 2, 2)):
        x = np.ones(shape, np.float32)
        g = dropcore.Generator(0)
        assert F.dropout(x, 0.5, generator=g).shape == shape
        assert F.gaussian_noise(x, 1.0, generator=g).shape == shape
        assert _core.dropout(x, 0.5, 0, 0).shape == shape
    g = dropcore.Generator(0, offset=1 << 64)  # exhausted, yet empty calls still work
    assert F.dropout(np.ones(0), 0.5, generator=g).shape == (0,)


# ----------------------------------------------------------------------------- binding invariants (the SAFETY comments)
def test_binding_refuses_read_only_out_and_inplace_instead_of_writing():
    x = np.ones(100, np.float32)
    ro = np.zeros(100, np.float32)
    ro.flags.writeable = False
    for call in (
        lambda: _core.dropout(x, 0.5, 0, 0, True, False, ro),
        lambda: _core.bernoulli_map(x, 0.5, 2.0, 0.0, 0.0, 0, 0, None, ro),
        lambda: _core.drop_block2d(x.reshape(1, 1, 10, 10), 0.5, 2, 0, 0, ro.reshape(1, 1, 10, 10)),
        lambda: _core.dropout(ro, 0.5, 0, 0, True, True),
    ):
        with pytest.raises(ValueError, match="read-only|writeable"):
            call()
    assert (ro == 0).all()


def test_concurrent_writer_and_reader_of_one_array_never_panic():
    """One thread drops out an array in place while another reads it through the
    binding: each call either runs or raises ValueError (in use), never PanicException."""
    import threading

    x = np.ones(1 << 20, np.float32)
    errors: list[BaseException] = []

    def writer():
        for _ in range(30):
            try:
                _core.dropout(x, 0.1, 1, 0, True, True)
            except ValueError:
                pass
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

    def reader():
        for _ in range(60):
            try:
                _core.dropout(x, 0.1, 2, 0)
            except ValueError:
                pass
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_every_kernel_writes_every_element_of_its_output(dtype, p):
    """The binding hands kernels fresh arrays that are not zero-filled (rust/python/mod.rs,
    new_array): that is sound only if each kernel writes every element. A NaN-filled
    out= buffer must come back without a single NaN for finite input."""
    x = np.random.default_rng(8).standard_normal((3, 4, 6, 7)).astype(dtype)  # odd sizes: tails
    kernels = {
        "dropout": lambda o: _core.dropout(x, p, 1, 3, True, False, o),
        "dropout phase 1": lambda o: _core.dropout(x, p, 1, 3, False, False, o, 1),
        "alpha": lambda o: _core.bernoulli_map(x, p, 1.5, 0.25, -1.0, 1, 3, None, o),
        "grouped": lambda o: _core.bernoulli_map(x, p, 2.0, 0.0, 0.0, 1, 3, 42, o),
        "gaussian x": lambda o: _core.gaussian_map(x, 0.5 + p, True, 1, 3, o),
        "gaussian +": lambda o: _core.gaussian_map(x, 0.5 + p, False, 1, 3, o),
        "drop_block": lambda o: _core.drop_block2d(x, p, 3, 1, 3, o),
    }
    for name, kernel in kernels.items():
        out = np.full_like(x, np.nan)
        kernel(out)
        assert not np.isnan(out).any(), name
        # The fresh-array path runs the same kernel: equal results.
        fresh = kernel(None)
        np.testing.assert_array_equal(fresh, out, err_msg=name)
    big = np.random.default_rng(9).standard_normal((300, 1000)).astype(dtype)  # parallel chunks
    out = np.full_like(big, np.nan)
    _core.dropout(big, p, 1, 3, True, False, out)
    assert not np.isnan(out).any()
    w = np.random.default_rng(10).standard_normal((5, 7)).astype(dtype)
    if p > 0:
        y = _core.dropconnect_forward(x.reshape(-1, 7)[:9], w, None, p, 1, 3)
        gx, gw = _core.dropconnect_backward(np.ones((9, 5), dtype), x.reshape(-1, 7)[:9], w, p, 1, 3)
        assert not (np.isnan(y).any() or np.isnan(gx).any() or np.isnan(gw).any())
    words = _core.philox_words(4, 5, 1001)
    np.testing.assert_array_equal(words, philox_ref.words(4, 5, 1001))


def test_tensor_inplace_follows_pytorch_leaf_refused_non_leaf_recorded():
    g = dropcore.Generator(30)
    leaf = dropcore.ones(4, 6, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.dropout(leaf, 0.5, inplace=True, generator=g)
    assert g.offset == 0  # refused before any word was drawn
    y = leaf * 3.0
    out = F.dropout(y, 0.5, inplace=True, generator=dropcore.Generator(30))
    assert out is y and y.grad_fn is not None
    keep = philox_ref.keep_mask(30, 0, 24, 0.5).reshape(4, 6)
    np.testing.assert_array_equal(y.detach().numpy(), np.where(keep, 6.0, 0.0))
    y.sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), np.where(keep, 6.0, 0.0))
