"""Datasets, samplers and ``DataLoader`` with ``torch.utils.data``'s names and behaviour.

Shuffling draws from dropcore's Philox generator: a permutation of ``n`` items sorts
``n`` 64-bit keys made of the next ``2n`` words of the stream. With ``generator=g`` an
epoch's order is a pure function of ``g``'s state when the epoch starts (each epoch
advances ``g`` by ``2n`` words); without one, each epoch takes a fresh 64-bit seed from
the default generator, so ``dropcore.manual_seed`` makes the whole run reproducible.

Batches of a :class:`TensorDataset` (NumPy arrays or Tensors), or of a :class:`Subset`
of one, are gathered with one fancy-indexing call per array: only the batch is copied,
never the dataset. Other datasets are read item by item and collated with
:func:`default_collate`, as in PyTorch. Batches are dropcore Tensors (NumPy arrays are
converted as PyTorch converts them to torch Tensors).
"""

from __future__ import annotations

import bisect
import collections.abc
import math
import warnings
from itertools import accumulate
from typing import Any, Callable, Generic, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .. import _core
from ..random import Generator, _resolve, default_generator
from ..tensor import Tensor

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "Subset",
    "ConcatDataset",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "BatchSampler",
    "DataLoader",
    "default_collate",
    "default_convert",
    "random_split",
]

T = TypeVar("T")


# ----------------------------------------------------------------------------- random helpers
def _words(gen: Generator, n: int) -> np.ndarray:
    seed, offset = gen.take(n)
    return _core.philox_words(seed, offset, n) if n else np.zeros(0, np.uint32)


def _randperm(n: int, generator: Generator | None) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` from ``2n`` Philox words (argsort of
    64-bit keys; a tie has probability below n^2 / 2^65 and is broken by position)."""
    w = _words(_resolve(generator), 2 * n).astype(np.uint64).reshape(n, 2)
    keys = (w[:, 0] << np.uint64(32)) | w[:, 1]
    return np.argsort(keys, kind="stable")


def _fresh_generator() -> Generator:
    """A generator seeded from two words of the default generator (one per epoch)."""
    lo, hi = (int(v) for v in _words(default_generator, 2))
    return Generator(lo | (hi << 32))


# ----------------------------------------------------------------------------- datasets
class Dataset(Generic[T]):
    """A map-style dataset: ``__getitem__(index)`` and, usually, ``__len__``."""

    def __getitem__(self, index) -> T:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: "Dataset[T]") -> "ConcatDataset[T]":
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T]):
    """A dataset that is a stream: subclasses write ``__iter__``."""

    def __iter__(self) -> Iterator[T]:
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")


class TensorDataset(Dataset):
    """Samples are ``tuple(t[i] for t in tensors)`` over Tensors or NumPy arrays of equal length.

    Examples:
        >>> ds = TensorDataset(np.zeros((100, 64), np.float32), np.arange(100))
        >>> x, y = ds[3]
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


class Subset(Dataset):
    """The items of ``dataset`` at ``indices`` (no data is copied)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after another."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise ValueError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        i = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[i - 1] if i else 0
        return self.datasets[i][idx - start]


# ----------------------------------------------------------------------------- samplers
class Sampler(Generic[T]):
    """Yields indices (or lists of indices) into a dataset."""

    def __iter__(self) -> Iterator[T]:
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A random order of the indices (a Philox permutation), or draws with replacement.

    Args:
        data_source: the dataset.
        replacement: draw ``num_samples`` indices independently. Default: False.
        num_samples: how many indices per epoch. Default: ``len(data_source)``.
        generator: the :class:`dropcore.Generator` to draw from (else one seeded from the
            default generator each epoch).
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        gen = _resolve(self.generator) if self.generator is not None else _fresh_generator()
        if self.replacement:
            # 53-bit uniforms from word pairs, scaled to [0, n).
            w = _words(gen, 2 * self.num_samples).astype(np.uint64).reshape(-1, 2)
            u = ((w[:, 0] << np.uint64(21)) ^ (w[:, 1] >> np.uint64(11))) & np.uint64((1 << 53) - 1)
            yield from (u.astype(np.float64) * (n * 2.0**-53)).astype(np.int64).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from _randperm(n, gen).tolist()
        if self.num_samples % n:
            yield from _randperm(n, gen)[: self.num_samples % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given indices in a random order."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        gen = _resolve(self.generator) if self.generator is not None else _fresh_generator()
        for i in _randperm(len(self.indices), gen).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler[list]):
    """Groups another sampler's indices into lists of ``batch_size``."""

    def __init__(self, sampler: Sampler[int] | Iterable[int], batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list]:
        batch: list = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


# ----------------------------------------------------------------------------- collation
def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def default_convert(data: Any) -> Any:
    """NumPy arrays (and scalars) to Tensors, recursively through dicts and sequences."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.generic)) and data.dtype.kind not in "SUO":
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (tuple, list)):
        return [default_convert(d) for d in data]  # a tuple gives a list, as in PyTorch
    return data


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Tensors and NumPy arrays are stacked into a Tensor (dtype kept); Python floats become
    float64 and ints int64 Tensors; strings stay a list; dicts, namedtuples and sequences
    are collated field by field (a tuple sample gives a list, as in PyTorch).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor(np.stack([b._data for b in batch]))
    if isinstance(elem, (np.ndarray, np.generic)) and elem.dtype.kind not in "SUO":
        return Tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=bool))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {k: default_collate([d[k] for d in batch]) for k in elem}
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(
        "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        f"found {type(elem)}"
    )


def _gather(dataset: Any, idx: np.ndarray):
    """The collated batch at ``idx`` by fancy indexing, or None when the dataset is not a
    TensorDataset (possibly under Subsets). Equal to ``default_collate`` of the items."""
    if isinstance(dataset, Subset):
        inner = np.asarray(dataset.indices)
        if inner.dtype.kind not in "iu":
            return None
        return _gather(dataset.dataset, inner[idx])
    if type(dataset) is not TensorDataset:
        return None
    out = []
    for t in dataset.tensors:
        if isinstance(t, Tensor):
            if t.requires_grad:
                return None
            out.append(Tensor(t._data[idx]))
        elif isinstance(t, np.ndarray) and t.dtype.kind not in "SUO":
            out.append(Tensor(t[idx]))
        else:
            return None
    return out


# ----------------------------------------------------------------------------- loader
class DataLoader(Generic[T]):
    """Iterate over a dataset in (shuffled) batches, as ``torch.utils.data.DataLoader``.

    Args:
        dataset: a map-style :class:`Dataset` (anything with ``__getitem__``/``__len__``)
            or an :class:`IterableDataset`.
        batch_size: samples per batch; None disables batching. Default: 1.
        shuffle: a new random order every epoch. Default: False.
        sampler / batch_sampler: custom index orders (exclusive with ``shuffle``).
        num_workers: accepted; dropcore loads in the main process (a warning says so when > 0).
        collate_fn: merges a list of samples into a batch. Default: :func:`default_collate`.
        drop_last: drop the last incomplete batch. Default: False.
        generator: the :class:`dropcore.Generator` that shuffling draws from.

    Examples:
        >>> ds = TensorDataset(x_train, y_train)
        >>> g = dropcore.Generator(0)
        >>> for xb, yb in DataLoader(ds, batch_size=64, shuffle=True, generator=g):
        ...     ...
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable | None = None, multiprocessing_context=None,
                 generator: Generator | None = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True) -> None:
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers > 0:
            warnings.warn(f"dropcore's DataLoader loads in the main process; num_workers={num_workers} is ignored "
                          "(the batches and their order are the same)", UserWarning, stacklevel=2)
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"generator must be a dropcore.Generator, but got {type(generator).__name__}")
        self.dataset = dataset
        self.num_workers = num_workers
        self.generator = generator
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
            if sampler is not None and shuffle:
                raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        elif batch_size is not None and self._iterable:
            BatchSampler([], batch_size, drop_last)  # same argument checks
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._auto_collation = batch_sampler is not None or (self._iterable and batch_size is not None)
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else default_convert)

    def __iter__(self) -> Iterator[Any]:
        if self._iterable:
            yield from self._iter_stream()
            return
        if not self._auto_collation:
            for i in self.sampler:
                yield self.collate_fn(self.dataset[i])
            return
        fast = self.collate_fn is default_collate
        for indices in self.batch_sampler:
            batch = _gather(self.dataset, np.asarray(indices, dtype=np.int64)) if fast else None
            if batch is None:
                batch = self.collate_fn([self.dataset[i] for i in indices])
            yield batch

    def _iter_stream(self) -> Iterator[Any]:
        if self.batch_size is None:
            for item in self.dataset:
                yield self.collate_fn(item)
            return
        batch: list = []
        for item in self.dataset:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return len(self.batch_sampler) if self.batch_sampler is not None else len(self.sampler)


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator: Generator | None = default_generator
                 ) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random :class:`Subset` s of the given lengths.

    ``lengths`` may be fractions summing to 1: each part gets ``floor(n * fraction)`` and
    the remainder is dealt out one by one from the first part, as in PyTorch.

    Examples:
        >>> train, val = random_split(ds, [0.8, 0.2], generator=dropcore.Generator(42))
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              UserWarning, stacklevel=2)
        lengths = sizes
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = _randperm(n, generator).tolist()
    return [Subset(dataset, perm[end - size : end]) for end, size in zip(accumulate(lengths), lengths)]
