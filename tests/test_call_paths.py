"""The cheap paths of a dropout call (issue 11, small-call cost) decide exactly what
the full checks decide: the one-crossing path (``_core.dropout_call``) for the common
call, the overlap short-cut for arrays that own their memory, and the generator's
position (held by the compiled base class) on its error paths and across threads."""

import threading

import numpy as np
import pytest

import dropcore
import philox_ref
from dropcore import _core
from dropcore.nn import functional as F


def _general_path_only(*args, **kwargs):
    raise AssertionError("the common call went down the general path")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_common_call_takes_one_crossing_and_matches_the_reference(monkeypatch, dtype):
    # The general path's kernel is disabled: every call below must take the fast path.
    # Sizes: odd and even, both sides of the GIL threshold (8192 elements).
    monkeypatch.setattr(_core, "dropout", _general_path_only)
    for n in (1, 2, 3, 16, 1001, 8191, 8192, 10_001):
        x = np.random.default_rng(n).standard_normal(n).astype(dtype).reshape((1, n) if n % 2 else (n // 2, 2))
        want = philox_ref.dropout(x, 0.3, 11, 5)
        words = 5 + (n + 1) // 2
        g = dropcore.Generator(11, 5)
        y = F.dropout(x, 0.3, generator=g)
        assert y is not x and y.dtype == dtype and g.offset == words
        np.testing.assert_array_equal(y, want)
        out, g = np.full_like(x, np.nan), dropcore.Generator(11, 5)
        assert F.dropout(x, 0.3, generator=g, out=out) is out and g.offset == words
        np.testing.assert_array_equal(out, want)
        for kwargs in ({"inplace": True}, {"out": "x"}):
            z, g = x.copy(), dropcore.Generator(11, 5)
            kw = {"out": z} if kwargs.get("out") == "x" else kwargs
            assert F.dropout(z, 0.3, generator=g, **kw) is z and g.offset == words
            np.testing.assert_array_equal(z, want)
        dropcore.manual_seed(11)
        dropcore.default_generator.set_state((11, 5))
        np.testing.assert_array_equal(F.dropout(x, 0.3), want)
        assert dropcore.default_generator.offset == words
    # inverted=False keeps the survivors unscaled; p == 1 drops everything
    x = np.arange(1, 101, dtype=dtype)
    keep = philox_ref.keep_mask(3, 0, 100, 0.6)
    np.testing.assert_array_equal(F.dropout(x, 0.6, generator=dropcore.Generator(3), inverted=False), np.where(keep, x, 0))
    g = dropcore.Generator(3)
    np.testing.assert_array_equal(F.dropout(x, 1.0, generator=g), np.zeros_like(x))
    assert g.offset == 50


def test_a_tensor_takes_the_one_crossing_path_and_backward_recomputes_its_mask(monkeypatch):
    x = np.random.default_rng(2).standard_normal((7, 9)).astype(np.float32)
    want = philox_ref.dropout(x, 0.4, 21, 3)
    t = dropcore.Tensor(x, requires_grad=True)
    with monkeypatch.context() as m:
        m.setattr(_core, "dropout", _general_path_only)
        y = F.dropout(t, 0.4, generator=dropcore.Generator(21, 3))
        plain = F.dropout(dropcore.Tensor(x), 0.4, generator=dropcore.Generator(21, 3))
    np.testing.assert_array_equal(y.detach().numpy(), want)
    assert y.grad_fn is not None and y.grad_fn.name() == "NativeDropoutBackward0"
    assert plain.grad_fn is None and not plain.requires_grad
    np.testing.assert_array_equal(plain.numpy(), want)
    y.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), philox_ref.dropout(np.ones_like(x), 0.4, 21, 3))
    m = dropcore.nn.Dropout(0.4, generator=dropcore.Generator(21, 3))
    np.testing.assert_array_equal(m(dropcore.Tensor(x)).numpy(), want)
    with dropcore.no_grad():  # nothing records: a plain Tensor, as _make_op gives
        z = F.dropout(t, 0.4, generator=dropcore.Generator(21, 3))
    assert z.grad_fn is None and not z.requires_grad and z.is_leaf
    np.testing.assert_array_equal(z.numpy(), want)


def _declined_calls():
    """Calls ``_core.dropout_call`` must leave to the general path: (name, x, p, inverted,
    inplace, out). ``None`` as out means none; "x" means the input itself."""
    x = np.random.default_rng(4).standard_normal(64).astype(np.float32)
    ro = x.copy()
    ro.flags.writeable = False
    unaligned = np.frombuffer(bytearray(4 * 65), np.uint8)[1 : 1 + 4 * 64].view(np.float32)
    ro_out = np.zeros_like(x)
    ro_out.flags.writeable = False
    buf = np.zeros(128, np.float32)
    yield from [
        ("p an int", x, 1, True, False, None),
        ("p a NumPy float", x, np.float64(0.5), True, False, None),
        ("p a bool", x, True, True, False, None),
        ("p zero", x, 0.0, True, False, None),
        ("p NaN", x, float("nan"), True, False, None),
        ("p above 1", x, 1.5, True, False, None),
        ("p negative", x, -0.25, True, False, None),
        ("inverted an int", x, 0.5, 1, False, None),
        ("inplace an int", x, 0.5, True, 1, None),
        ("strided input", buf[::2], 0.5, True, False, None),
        ("Fortran-order input", np.asfortranarray(x.reshape(8, 8)), 0.5, True, False, None),
        ("byte-swapped input", x.astype(">f4"), 0.5, True, False, None),
        ("unaligned input", unaligned, 0.5, True, False, None),
        ("empty input", x[:0], 0.5, True, False, None),
        ("integer input", np.arange(64), 0.5, True, False, None),
        ("float16 input", x.astype(np.float16), 0.5, True, False, None),
        ("a list", [1.0, 2.0], 0.5, True, False, None),
        ("read-only input in place", ro, 0.5, True, True, None),
        ("read-only input, out=input", ro, 0.5, True, False, "x"),
        ("in place and another out", x, 0.5, True, True, np.zeros_like(x)),
        ("out of another shape", x, 0.5, True, False, np.zeros(63, np.float32)),
        ("out of another dtype", x, 0.5, True, False, np.zeros(64)),
        ("byte-swapped out", x, 0.5, True, False, np.zeros(64, ">f4")),
        ("read-only out", x, 0.5, True, False, ro_out),
        ("strided out", x, 0.5, True, False, buf[::2]),
        ("out overlapping the input", buf[:64], 0.5, True, False, buf[32:96]),
        ("out a list", x, 0.5, True, False, [0.0] * 64),
    ]


@pytest.mark.parametrize("case", list(_declined_calls()), ids=[c[0] for c in _declined_calls()])
def test_the_one_crossing_path_declines_every_other_call_without_drawing_or_writing(case):
    name, x, p, inverted, inplace, out = case
    out = x if isinstance(out, str) else out
    x0 = np.array(x, copy=True)
    out0 = None if out is None else np.array(out, copy=True)
    g = dropcore.Generator(8, 2)
    assert _core.dropout_call(x, p, g, inverted, inplace, out) is None
    assert g.get_state() == (8, 2)
    np.testing.assert_array_equal(np.asarray(x), x0)
    if out is not None:
        np.testing.assert_array_equal(np.asarray(out), out0)


def test_the_one_crossing_path_declines_a_generator_that_is_not_one():
    x = np.ones(8)
    assert _core.dropout_call(x, 0.5, object(), True, False, None) is None
    with pytest.raises(TypeError, match="generator must be a dropcore.Generator"):
        F.dropout(x, 0.5, generator=object())
    np.testing.assert_array_equal(x, 1.0)


def test_declined_layouts_still_get_the_reference_result_on_the_general_path():
    x = np.random.default_rng(5).standard_normal(130).astype(np.float32)
    want = philox_ref.dropout(x[::2], 0.5, 4, 1)
    np.testing.assert_array_equal(F.dropout(x[::2], 0.5, generator=dropcore.Generator(4, 1)), want)
    np.testing.assert_array_equal(F.dropout(x[::2].astype(">f4"), 0.5, generator=dropcore.Generator(4, 1)), want)
    np.testing.assert_array_equal(F.dropout(x[::2], np.float64(0.5), generator=dropcore.Generator(4, 1)), want)
    out = np.zeros(130, np.float32)[::2]
    F.dropout(np.ascontiguousarray(x[::2]), 0.5, generator=dropcore.Generator(4, 1), out=out)
    np.testing.assert_array_equal(out, want)


def test_threads_sharing_a_generator_get_disjoint_ranges():
    g = dropcore.Generator(31)
    x = np.ones(9001, np.float32)  # 4501 words a call, the kernel runs holding the GIL
    big = np.ones(20_000, np.float32)  # 10,000 words, the GIL released while it runs
    got: list[list[tuple[int, int]]] = [[] for _ in range(4)]

    def work(k):
        for i in range(150):
            n = (k * 7 + i) % 13
            got[k].append((g.take(n)[1], n))
            F.dropout(big if i % 3 == 0 else x, 0.5, generator=g)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    taken = sorted(r for rs in got for r in rs if r[1])
    assert len(taken) > 500
    for (a, n), (b, _) in zip(taken, taken[1:]):
        assert a + n <= b  # no word handed out twice
    dropout_words = 4 * sum(10_000 if i % 3 == 0 else 4501 for i in range(150))
    assert g.offset == sum(n for _, n in taken) + dropout_words  # and none skipped


def test_untake_gives_words_back_only_if_nothing_was_taken_since():
    g = dropcore.Generator(5, 100)
    seed, start = g.take(10)
    g._untake(seed, start, 10)
    assert g.get_state() == (5, 100)
    seed, start = g.take(10)
    g.take(1)
    g._untake(seed, start, 10)  # another call took words since: they stay used
    assert g.get_state() == (5, 111)
    g._untake(6, 110, 1)  # another seed: nothing
    assert g.get_state() == (5, 111)
    g.manual_seed(5)
    assert g.get_state() == (5, 0) and repr(g) == "Generator(seed=5, offset=0)"


def test_out_owning_its_memory_is_still_refused_when_the_input_is_a_view_of_it():
    # out owns its buffer and x is a view into it: the "both own their memory" short
    # cut must not apply (x does not own), and the exact overlap test must refuse.
    for buf, views in ((np.ones(10, np.float32), lambda b: (b[:], b[::-1], b.view())),
                       (np.ones((4, 5)), lambda b: (b[::-1], b[:, ::-1]))):
        assert buf.flags.owndata
        for x in views(buf):
            assert not x.flags.owndata
            g = dropcore.Generator(3)
            before = buf.copy()
            with pytest.raises(ValueError, match="overlap"):
                F.dropout(x, 0.5, generator=g, out=buf)
            assert g.offset == 0
            np.testing.assert_array_equal(buf, before)


def test_out_and_input_that_each_own_memory_take_the_short_cut_and_match_a_new_array():
    x = np.arange(1001, dtype=np.float64) + 0.5
    out = np.full_like(x, np.nan)
    assert x.flags.owndata and out.flags.owndata
    got = F.dropout(x, 0.3, generator=dropcore.Generator(5), out=out)
    assert got is out
    np.testing.assert_array_equal(out, F.dropout(x, 0.3, generator=dropcore.Generator(5)))
    # a view of a third array that does not overlap: the exact test, same answer
    third = np.full(2002, np.nan)
    view = third[::2]
    F.dropout(x, 0.3, generator=dropcore.Generator(5), out=view)
    np.testing.assert_array_equal(view, out)
    assert np.isnan(third[1::2]).all()


def test_take_releases_the_lock_after_overflow_and_keeps_its_checks():
    g = dropcore.Generator(1, offset=2**64 - 3)
    with pytest.raises(OverflowError):
        g.take(4)
    assert g.offset == 2**64 - 3
    # the lock is free again: another thread can take words (it would hang otherwise)
    got = []
    t = threading.Thread(target=lambda: got.append(g.take(3)))
    t.start()
    t.join(timeout=10)
    assert got == [(1, 2**64 - 3)] and g.offset == 2**64
    for bad, err in ((1.0, TypeError), (True, TypeError), ("3", TypeError), (-1, ValueError)):
        with pytest.raises(err):
            g.take(bad)
    h = dropcore.Generator(2)
    assert h.take(np.int64(5)) == (2, 0) and h.offset == 5


def test_inplace_and_out_of_place_draw_the_same_mask():
    x = np.arange(1, 10_001, dtype=np.float32)
    want = F.dropout(x, 0.5, generator=dropcore.Generator(9))
    y = x.copy()
    assert F.dropout(y, 0.5, inplace=True, generator=dropcore.Generator(9)) is y
    np.testing.assert_array_equal(y, want)
