"""dropcore.utils.data: batches, shuffles reproducible from the Philox generator (checked
against the word stream of tests/philox_ref.py), no whole-dataset copies, PyTorch's
collation, samplers, random_split and errors."""

import math
from collections import namedtuple

import numpy as np
import pytest

import dropcore
from dropcore.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler,
                                 SequentialSampler, Subset, SubsetRandomSampler, TensorDataset, default_collate,
                                 random_split)

from philox_ref import words as philox_words

X = np.arange(40, dtype=np.float32).reshape(20, 2)
Y = np.arange(20, dtype=np.int64)


def expected_perm(seed, offset, n):
    """The documented rule: argsort of 64-bit keys (word 2i << 32 | word 2i+1) from the stream."""
    w = philox_words(seed, offset, 2 * n).astype(np.uint64).reshape(n, 2)
    return np.argsort((w[:, 0] << np.uint64(32)) | w[:, 1], kind="stable")


def labels(loader):
    return [yb.tolist() for _, yb in loader]


def test_batches_cover_the_data_in_order_without_shuffle():
    loader = DataLoader(TensorDataset(X, Y), batch_size=6)
    batches = list(loader)
    assert len(loader) == 4 and len(batches) == 4
    xb, yb = batches[0]
    assert isinstance(xb, dropcore.Tensor) and xb.dtype == dropcore.float32 and yb.dtype == dropcore.int64
    np.testing.assert_array_equal(xb.numpy(), X[:6])
    assert labels(loader)[-1] == [18, 19]
    dropped = DataLoader(TensorDataset(X, Y), batch_size=6, drop_last=True)
    assert len(dropped) == 3 and labels(dropped)[-1] == [12, 13, 14, 15, 16, 17]


def test_shuffle_is_the_documented_philox_permutation_per_epoch():
    g = dropcore.Generator(77)
    loader = DataLoader(TensorDataset(X, Y), batch_size=7, shuffle=True, generator=g)
    first = sum(labels(loader), [])
    second = sum(labels(loader), [])
    assert first == expected_perm(77, 0, 20).tolist()
    assert second == expected_perm(77, 40, 20).tolist()  # each epoch takes 2n words
    assert g.offset == 80 and sorted(first) == list(range(20)) and first != second
    # Same seed, same orders; the data follow their labels.
    again = DataLoader(TensorDataset(X, Y), batch_size=7, shuffle=True, generator=dropcore.Generator(77))
    for (xb, yb), want in zip(again, [first[:7], first[7:14], first[14:]]):
        assert yb.tolist() == want
        np.testing.assert_array_equal(xb.numpy(), X[want])


def test_default_generator_makes_shuffles_reproducible_with_manual_seed():
    ds = TensorDataset(X, Y)
    dropcore.manual_seed(5)
    a = [labels(DataLoader(ds, batch_size=20, shuffle=True)) for _ in range(2)]
    dropcore.manual_seed(5)
    b = [labels(DataLoader(ds, batch_size=20, shuffle=True)) for _ in range(2)]
    assert a == b and a[0] != a[1]
    # The epoch seed is two words of the default generator (low word first).
    lo, hi = philox_words(5, 0, 2)
    assert a[0][0] == expected_perm(int(lo) | (int(hi) << 32), 0, 20).tolist()


def test_shuffle_is_uniform_enough():
    # Position of item 0 over 3000 epochs of 4 items: each position ~750 (6-sigma bound).
    g = dropcore.Generator(1)
    sampler = RandomSampler(range(4), generator=g)
    counts = np.zeros(4)
    for _ in range(3000):
        counts[list(sampler).index(0)] += 1
    sigma = math.sqrt(3000 * 0.25 * 0.75)
    assert np.all(np.abs(counts - 750) < 6 * sigma), counts


def test_works_on_tensors_and_never_copies_the_dataset():
    import tracemalloc

    xt = dropcore.tensor(X)
    loader = DataLoader(TensorDataset(xt, dropcore.tensor(Y)), batch_size=5, shuffle=True, generator=dropcore.Generator(3))
    for xb, yb in loader:
        np.testing.assert_array_equal(xb.numpy(), X[yb.numpy()])
        assert not np.shares_memory(xb.numpy(), X)
    # An 8 MB dataset, a full shuffled epoch: peak extra memory stays far below the data.
    big = np.zeros((20_000, 100), np.float32)
    loader = DataLoader(TensorDataset(big, np.arange(20_000)), batch_size=32, shuffle=True,
                        generator=dropcore.Generator(4))
    tracemalloc.start()
    try:
        n = sum(len(yb) for _, yb in loader)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 20_000 and peak < big.nbytes / 8, peak


def test_default_collate_follows_pytorch():
    Point = namedtuple("Point", "x y")
    batch = [{"a": np.ones(2), "b": 1.5, "c": 3, "s": "u", "p": Point(1, 2.0)},
             {"a": np.zeros(2), "b": 2.5, "c": 4, "s": "v", "p": Point(5, 6.0)}]
    out = default_collate(batch)
    assert out["a"].shape == (2, 2) and out["a"].dtype == dropcore.float64
    assert out["b"].dtype == dropcore.float64 and out["b"].tolist() == [1.5, 2.5]
    assert out["c"].dtype == dropcore.int64 and out["s"] == ["u", "v"]
    assert isinstance(out["p"], Point) and out["p"].x.tolist() == [1, 5]
    pairs = default_collate([(np.ones(3), 1), (np.zeros(3), 0)])
    assert isinstance(pairs, list) and pairs[0].shape == (2, 3)  # tuples collate to a list, as PyTorch
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object(), object()])


class Squares(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"x": np.full(2, i, np.float64), "y": i * i}


def test_generic_map_dataset_collate_fn_and_subsets():
    loader = DataLoader(Squares(), batch_size=4)
    batch = next(iter(loader))
    assert batch["y"].tolist() == [0, 1, 4, 9] and batch["x"].shape == (4, 2)
    custom = DataLoader(Squares(), batch_size=3, collate_fn=lambda items: [it["y"] for it in items])
    assert next(iter(custom)) == [0, 1, 4]
    sub = Subset(TensorDataset(X, Y), [5, 2, 9])
    assert labels(DataLoader(sub, batch_size=2)) == [[5, 2], [9]]
    assert len(ConcatDataset([Squares(), Squares()])) == 20 and (Squares() + Squares())[12]["y"] == 4
    unbatched = DataLoader(TensorDataset(X, Y), batch_size=None)
    first = next(iter(unbatched))
    assert first[0].shape == (2,) and len(unbatched) == 20


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(7))


def test_iterable_dataset_batches_in_stream_order():
    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3, drop_last=True)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        DataLoader(Stream(), shuffle=True)


def test_samplers():
    assert list(SequentialSampler(range(3))) == [0, 1, 2]
    assert list(BatchSampler(range(7), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(BatchSampler(range(7), 3, drop_last=True)) == 2
    g = dropcore.Generator(9)
    got = list(SubsetRandomSampler([10, 20, 30, 40], generator=g))
    assert got == [[10, 20, 30, 40][i] for i in expected_perm(9, 0, 4)]
    draws = list(RandomSampler(range(5), replacement=True, num_samples=2000, generator=dropcore.Generator(2)))
    assert len(draws) == 2000 and set(draws) == set(range(5))
    more = list(RandomSampler(range(3), num_samples=7, generator=dropcore.Generator(4)))
    assert sorted(more[:3]) == [0, 1, 2] and sorted(more[3:6]) == [0, 1, 2] and len(more) == 7
    loader = DataLoader(TensorDataset(X, Y), batch_sampler=BatchSampler(SequentialSampler(range(20)), 10, False))
    assert len(loader) == 2


def test_random_split_lengths_fractions_and_generator():
    ds = TensorDataset(X, Y)
    a, b = random_split(ds, [15, 5], generator=dropcore.Generator(0))
    perm = expected_perm(0, 0, 20).tolist()
    assert a.indices == perm[:15] and b.indices == perm[15:]
    parts = random_split(ds, [0.5, 0.3, 0.2], generator=dropcore.Generator(1))
    assert [len(p) for p in parts] == [10, 6, 4]
    assert sorted(sum((p.indices for p in parts), [])) == list(range(20))
    odd = random_split(range(7), [0.5, 0.5], generator=dropcore.Generator(1))
    assert [len(p) for p in odd] == [4, 3]  # the remainder goes to the first parts, as PyTorch
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(ds, [10, 5])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(3), [0.9, 0.1])


def test_argument_errors_like_pytorch():
    ds = TensorDataset(X, Y)
    with pytest.raises(ValueError, match="Size mismatch between tensors"):
        TensorDataset(X, Y[:3])
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=SequentialSampler(ds))
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_size=4, batch_sampler=BatchSampler(range(20), 4, False))
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(TypeError, match="dropcore.Generator"):
        DataLoader(ds, shuffle=True, generator=np.random.default_rng(0))
    with pytest.warns(UserWarning, match="main process"):
        loader = DataLoader(ds, batch_size=20, num_workers=2)
    assert labels(loader) == [list(range(20))]
