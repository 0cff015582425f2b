"""The cheap paths of a dropout call (issue 11, small-call cost) decide exactly what
the full checks decide: the overlap short-cut for arrays that own their memory, and
Generator.take's lock handling on its error paths."""

import threading

import numpy as np
import pytest

import dropcore
from dropcore.nn import functional as F


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
