"""The Philox word stream and Generator (SPEC §2) against the independent reference."""

import numpy as np
import pytest

import dropcore
from dropcore import _core

import philox_ref


@pytest.mark.parametrize(
    "counter,key,expected",
    [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_known_answer_vectors(counter, key, expected):
    assert tuple(_core.philox4x32_10(list(counter), list(key))) == expected
    assert tuple(philox_ref.philox4x32_10(np.array([counter]), key)[0]) == expected


@pytest.mark.parametrize(
    "seed,offset,n",
    [(0, 0, 1000), (42, 3, 4097), (2**64 - 1, 4 * (2**32 - 3) + 1, 777), (123456789, 10**12 + 2, 129)],
)
def test_word_stream_matches_reference(seed, offset, n):
    np.testing.assert_array_equal(_core.philox_words(seed, offset, n), philox_ref.words(seed, offset, n))


def test_generator_hands_out_consecutive_ranges():
    g = dropcore.Generator(7, offset=5)
    assert (g.seed, g.offset) == (7, 5)
    assert g.take(10) == (7, 5)
    assert g.take(3) == (7, 15)
    assert g.offset == 18
    assert g.get_state() == (7, 18)
    g.manual_seed(9)
    assert g.get_state() == (9, 0)


def test_manual_seed_resets_the_default_generator():
    x = np.ones(1000, np.float32)
    dropcore.manual_seed(3)
    a = dropcore.dropout.dropout(x)
    dropcore.manual_seed(3)
    b = dropcore.dropout.dropout(x)
    np.testing.assert_array_equal(a, b)
    assert dropcore.default_generator.get_state() == (3, 500)  # 1000 elements, two per word


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, "3"])
def test_generator_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError)):
        dropcore.Generator(bad)
