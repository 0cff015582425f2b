"""Data for the demo and the tests: digits, the 2-D disc problem, minibatches, IDX files.

Nothing here downloads and nothing needs more than NumPy: the digits ship inside the
package (``_digits.npz``, 45 KB), the disc is generated, and MNIST / Fashion-MNIST are
read from IDX files a user already has (``load_mnist``).
"""

from __future__ import annotations

import gzip
import math
import os
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["load_digits", "make_disc", "minibatches", "load_idx", "load_mnist"]


def _stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    test = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[: int(round(test_fraction * len(idx)))])
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(len(y), bool)
    mask[test_idx] = False
    return rng.permutation(np.flatnonzero(mask)), rng.permutation(test_idx)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits as uint8 pixels 0..16 and uint8 labels.

    The same images, in the same order, as scikit-learn's ``load_digits`` (the test set
    of the UCI "Optical Recognition of Handwritten Digits" data, E. Alpaydin and
    C. Kaynak, 1998, CC BY 4.0), stored in the package so the core needs no SciPy.
    """
    with (resources.files(__package__) / "_digits.npz").open("rb") as f, np.load(f) as npz:
        return npz["images"], npz["labels"]


def load_digits(test_fraction: float = 0.25, seed: int = 0, dtype=np.float32):
    """The 8x8 handwritten digits (1,797 images; scikit-learn's set), scaled to [0, 1].

    Returns ``(x_train, y_train, x_test, y_test)``: float arrays of shape (n, 64) and
    int64 labels, split per class so both parts keep the class balance.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), but got {test_fraction}")
    images, labels = _digits()
    x = (images / 16.0).astype(dtype)
    y = labels.astype(np.int64)
    tr, te = _stratified_split(y, test_fraction, np.random.default_rng(seed))
    return x[tr], y[tr], x[te], y[te]


def make_disc(n: int, seed: int = 0, dtype=np.float32):
    """Fleuret's toy problem: points uniform in [-1, 1]^2, label 1 inside the disc of
    radius sqrt(2/pi) (half the square's area, so the classes are balanced)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2)).astype(dtype)
    y = ((x.astype(np.float64) ** 2).sum(1) < 2.0 / math.pi).astype(np.int64)
    return x, y


def minibatches(x, y=None, batch_size: int = 64, shuffle: bool = True, seed: int | None = None,
                drop_last: bool = False, generator: np.random.Generator | None = None) -> Iterator:
    """Yield ``(x_batch, y_batch)`` (or ``x_batch`` when ``y`` is None) over one epoch.

    The order is a permutation drawn from ``generator`` (a NumPy Generator, advanced
    once per epoch) or else from ``np.random.default_rng(seed)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, but got {batch_size}")
    n = len(x)
    if y is not None and len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)}")
    rng = generator if generator is not None else np.random.default_rng(seed)
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        yield (x[idx], y[idx]) if y is not None else x[idx]


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not.

    Raises ValueError on a bad magic number, an unknown type code or a size that does
    not match the header.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, gzip.BadGzipFile) as e:
            raise ValueError(f"{path}: damaged or truncated gzip data ({e})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: header says {dims} ({expected} bytes) but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def load_mnist(root: str | os.PathLike, kind: str = "train", dtype=np.float32):
    """MNIST or Fashion-MNIST from the standard files in ``root``.

    ``kind`` is ``"train"`` or ``"t10k"``; files may be gzipped. Returns images scaled
    to [0, 1], shape (n, 28, 28), and int64 labels.
    """
    if kind not in ("train", "t10k"):
        raise ValueError(f"kind must be 'train' or 't10k', but got {kind!r}")
    root = Path(root).expanduser()

    def find(stem: str) -> Path:
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
            if (root / name).exists():
                return root / name
        raise FileNotFoundError(f"no {stem}[.gz] in {root}")

    images = load_idx(find(f"{kind}-images-idx3-ubyte"))
    labels = load_idx(find(f"{kind}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return (images / 255.0).astype(dtype), labels.astype(np.int64)
