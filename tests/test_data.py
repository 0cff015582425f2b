"""Data loaders: digits split, disc problem, minibatches, IDX files written here."""

import gzip
import struct

import numpy as np
import pytest

from dropcore import data


def test_digits_split_is_stratified_and_scaled():
    xtr, ytr, xte, yte = data.load_digits(test_fraction=0.25, seed=0)
    assert xtr.shape[1] == 64 and xtr.dtype == np.float32
    assert len(xtr) + len(xte) == 1797
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    # every class keeps ~25% in the test part
    for c in range(10):
        frac = (yte == c).sum() / ((ytr == c).sum() + (yte == c).sum())
        assert abs(frac - 0.25) < 0.01
    a = data.load_digits(seed=1)
    b = data.load_digits(seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], data.load_digits(seed=2)[1])


def test_embedded_digits_are_scikit_learns():
    # The package ships the digits so the core needs no SciPy; they must be the same
    # images and labels, in the same order, as scikit-learn's copy.
    from sklearn.datasets import load_digits as sk_digits

    sk = sk_digits()
    images, labels = data._digits()
    assert images.dtype == np.uint8 and images.shape == (1797, 64)
    np.testing.assert_array_equal(images, sk.data)
    np.testing.assert_array_equal(labels, sk.target)


def test_disc_labels_and_balance():
    x, y = data.make_disc(20_000, seed=3)
    assert x.shape == (20_000, 2) and x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(y, ((x.astype(np.float64) ** 2).sum(1) < 2 / np.pi).astype(int))
    # P(inside) = 1/2 exactly: a binomial bound.
    assert abs(y.mean() - 0.5) < 6 * np.sqrt(0.25 / len(y))


def test_minibatches_cover_each_row_once():
    x = np.arange(10)[:, None]
    y = np.arange(10)
    seen = []
    for xb, yb in data.minibatches(x, y, 3, seed=0):
        np.testing.assert_array_equal(xb[:, 0], yb)
        seen += list(yb)
    assert sorted(seen) == list(range(10))
    assert [len(b) for b in data.minibatches(x, None, 4, shuffle=False, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError):
        next(data.minibatches(x, y[:5], 2))


def write_idx(path, array, code, compress=False):
    dtype = {0x08: ">u1", 0x0D: ">f4", 0x0C: ">i4"}[code]
    raw = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += np.asarray(array, dtype=dtype).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8) % 10
    write_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if compress else "")), images, 0x08, compress)
    write_idx(tmp_path / ("train-labels-idx1-ubyte" + (".gz" if compress else "")), labels, 0x08, compress)
    np.testing.assert_array_equal(data.load_idx(next(tmp_path.glob("train-images*"))), images)
    x, y = data.load_mnist(tmp_path, "train")
    assert x.shape == (7, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x, images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    floats = np.linspace(-1, 1, 12).reshape(3, 4)
    write_idx(tmp_path / "f.idx", floats, 0x0D)
    np.testing.assert_allclose(data.load_idx(tmp_path / "f.idx"), floats, rtol=1e-6)


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic"):
        data.load_idx(bad)
    write_idx(tmp_path / "t", np.zeros(10, np.uint8), 0x08)
    truncated = (tmp_path / "t").read_bytes()[:-3]
    (tmp_path / "t").write_bytes(truncated)
    with pytest.raises(ValueError, match="header says"):
        data.load_idx(tmp_path / "t")
    (tmp_path / "u").write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="type code"):
        data.load_idx(tmp_path / "u")
    with pytest.raises(FileNotFoundError):
        data.load_mnist(tmp_path, "t10k")


def test_idx_damaged_gzip_short_file_and_big_endian_dims(tmp_path):
    write_idx(tmp_path / "a.gz", np.random.default_rng(1).integers(0, 256, (3, 100), dtype=np.uint8), 0x08, compress=True)
    raw = (tmp_path / "a.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="gzip"):
        data.load_idx(tmp_path / "cut.gz")
    (tmp_path / "short").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        data.load_idx(tmp_path / "short")
    # a dimension above 255 only reads right with big-endian, 4-byte sizes
    big = np.arange(2 * 300, dtype=np.int32).reshape(2, 300) - 7
    write_idx(tmp_path / "i4", big, 0x0C)
    out = data.load_idx(tmp_path / "i4")
    assert out.shape == (2, 300) and out.dtype == np.int32
    np.testing.assert_array_equal(out, big)
    # a header promising more dimensions than the file holds
    (tmp_path / "hdr").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(ValueError, match="truncated header"):
        data.load_idx(tmp_path / "hdr")


def test_mnist_t10k_with_dot_names_and_mismatched_counts(tmp_path):
    write_idx(tmp_path / "t10k-images.idx3-ubyte", np.zeros((4, 28, 28), np.uint8), 0x08)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", np.arange(4, dtype=np.uint8), 0x08)
    x, y = data.load_mnist(tmp_path, "t10k")
    assert x.shape == (4, 28, 28) and list(y) == [0, 1, 2, 3]
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", np.arange(3, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        data.load_mnist(tmp_path, "t10k")
    with pytest.raises(ValueError, match="kind"):
        data.load_mnist(tmp_path, "test")


def test_minibatches_from_a_numpy_generator_differ_per_epoch():
    x = np.arange(20)
    g = np.random.default_rng(0)
    e1 = np.concatenate(list(data.minibatches(x, None, 6, generator=g)))
    e2 = np.concatenate(list(data.minibatches(x, None, 6, generator=g)))
    assert sorted(e1) == sorted(e2) == list(range(20))
    assert not np.array_equal(e1, e2)
    np.testing.assert_array_equal(e1, np.random.default_rng(0).permutation(20))
    unshuffled = np.concatenate(list(data.minibatches(x, None, 6, shuffle=False)))
    np.testing.assert_array_equal(unshuffled, x)


def test_digits_dtype_and_bad_fraction():
    xtr, _, _, _ = data.load_digits(dtype=np.float64)
    assert xtr.dtype == np.float64
    with pytest.raises(ValueError):
        data.load_digits(test_fraction=1.0)
