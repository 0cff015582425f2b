"""dropcore.save / dropcore.load: exact round trips, no pickle on the default path, and a
clear ValueError (never a crash) for corrupt or truncated files."""

import io
import pickle
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest

import dropcore
from dropcore import nn, optim


def roundtrip(obj, **load_kw):
    buf = io.BytesIO()
    dropcore.save(obj, buf)
    buf.seek(0)
    return dropcore.load(buf, **load_kw)


def test_state_dict_round_trip_is_exact_and_keeps_types(tmp_path):
    dropcore.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model(dropcore.randn(8, 5))  # move the running statistics
    model[2].double()  # mixed dtypes survive too
    path = tmp_path / "model.dcpt"
    dropcore.save(model.state_dict(), path)
    loaded = dropcore.load(path)
    assert isinstance(loaded, OrderedDict) and list(loaded) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert isinstance(loaded[k], dropcore.Tensor) and loaded[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())
    fresh = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2).double())
    fresh.load_state_dict(loaded)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k].numpy(), v.numpy())


def test_python_values_numpy_and_generators_round_trip_exactly():
    w = np.arange(6.0).reshape(2, 3)
    obj = {
        "ints": [0, -3, 2**70],
        "floats": (0.1, float("inf"), -0.0, 1e-310),
        "nan": float("nan"),
        "flags": [True, False, None],
        "text": "résumé",
        3: {"nested": (1, [2.5])},
        (1, "a"): "tuple key",
        "arrays": [w, w, np.asfortranarray(w), w[:, ::2], np.arange(4, dtype=np.uint8), np.zeros((0, 3))],
        "scalar": np.float32(1.5),
        "counter": Counter({2: 1, 5: 2}),
        "gen": dropcore.Generator(2**64 - 1, offset=12345),
        "param": nn.Parameter(dropcore.ones(2)),
        "frozen": dropcore.tensor([1, 2]),
    }
    got = roundtrip(obj)
    assert got["ints"] == [0, -3, 2**70] and got["floats"] == (0.1, float("inf"), -0.0, 1e-310)
    assert str(got["floats"][2]) == "-0.0" and np.isnan(got["nan"])
    assert got["flags"] == [True, False, None] and got["text"] == "résumé"
    assert got[3] == {"nested": (1, [2.5])} and got[(1, "a")] == "tuple key"
    a = got["arrays"]
    assert a[0] is a[1]  # stored once, comes back shared (tied weights stay tied)
    for x, y in zip(a, obj["arrays"]):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    assert a[2].flags.f_contiguous and a[0].flags.writeable
    assert type(got["scalar"]) is np.float32 and got["scalar"] == 1.5
    assert got["counter"] == Counter({2: 1, 5: 2}) and type(got["counter"]) is Counter
    assert got["gen"].get_state() == (2**64 - 1, 12345)
    assert isinstance(got["param"], nn.Parameter) and got["param"].requires_grad
    assert got["frozen"].dtype == dropcore.int64 and not got["frozen"].requires_grad


def test_optimizer_and_scheduler_checkpoint_round_trip():
    p = dropcore.ones(3, requires_grad=True)
    opt = optim.Adam([p], lr=0.1, betas=(0.8, 0.9))
    sched = optim.lr_scheduler.MultiStepLR(opt, [1, 3])
    p.grad = dropcore.ones(3)
    opt.step()
    sched.step()
    got = roundtrip({"opt": opt.state_dict(), "sched": sched.state_dict()})
    assert got["opt"]["param_groups"][0]["betas"] == (0.8, 0.9)
    assert list(got["opt"]["state"]) == [0] and float(got["opt"]["state"][0]["step"]) == 1.0
    assert got["sched"]["milestones"] == Counter([1, 3]) and got["sched"]["last_epoch"] == 1


def test_default_load_never_unpickles(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("this would run on load",))

    dropcore.save({"model": nn.Linear(2, 2), "x": Sneaky()}, tmp_path / "full.dcpt")
    with zipfile.ZipFile(tmp_path / "full.dcpt") as zf:
        assert "dropcore/objects.pkl" in zf.namelist()
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed.*nn.linear.Linear"):
        dropcore.load(tmp_path / "full.dcpt")
    # Only a deliberate weights_only=False unpickles (a whole module, as torch.save(model) does).
    dropcore.save(nn.Linear(2, 3), tmp_path / "module.dcpt")
    m = dropcore.load(tmp_path / "module.dcpt", weights_only=False)
    assert isinstance(m, nn.Linear) and m.weight.shape == (3, 2)
    # A state-dict-only file holds no pickle member at all.
    dropcore.save(nn.Linear(2, 2).state_dict(), tmp_path / "sd.dcpt")
    with zipfile.ZipFile(tmp_path / "sd.dcpt") as zf:
        assert not any(n.endswith(".pkl") for n in zf.namelist())


def _valid_bytes():
    buf = io.BytesIO()
    dropcore.save({"w": np.arange(1000, dtype=np.float64), "b": dropcore.ones(3)}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("cut", [0, 1, 10, 100, 1000, 5000, -200, -22, -1])
def test_truncated_files_raise_value_error(cut, tmp_path):
    data = _valid_bytes()
    path = tmp_path / "t.dcpt"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="not a valid dropcore checkpoint"):
        dropcore.load(path)


def test_corrupt_files_raise_value_error(tmp_path):
    data = bytearray(_valid_bytes())
    refused = loaded = 0
    for offset in range(0, len(data), 97):  # flip one byte anywhere: CRC, header or payload
        bad = bytearray(data)
        bad[offset] ^= 0x55
        try:
            dropcore.load(io.BytesIO(bytes(bad)))  # any exception but ValueError fails the test
            loaded += 1  # a flip in a field nothing checks (e.g. a timestamp)
        except ValueError:
            refused += 1
    assert refused >= 0.9 * (refused + loaded)
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ValueError):
        dropcore.load(tmp_path / "junk")
    with pytest.raises(ValueError):
        dropcore.load(io.BytesIO(pickle.dumps({"a": 1})))  # a pickle is not a checkpoint
    with pytest.raises(FileNotFoundError):
        dropcore.load(tmp_path / "missing")


def _zip_with(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    buf.seek(0)
    return buf


def test_forged_archives_are_refused_without_allocating():
    import json

    tree = {"format": "dropcore-checkpoint", "version": 1, "root": {"t": "ndarray", "a": 0}}
    # A .npy header claiming 10^12 float64 elements over a few bytes of data.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    forged = _zip_with({"dropcore/tree.json": json.dumps(tree), "dropcore/arrays/0.npy": header.getvalue() + b"\0" * 16})
    with pytest.raises(ValueError, match="header says"):
        dropcore.load(forged)
    # An object array would need pickle: refused.
    obj = io.BytesIO()
    np.lib.format.write_array_header_1_0(obj, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    with pytest.raises(ValueError, match="object arrays"):
        dropcore.load(_zip_with({"dropcore/tree.json": json.dumps(tree), "dropcore/arrays/0.npy": obj.getvalue()}))
    for root in ({"t": "nope"}, {"t": "ndarray", "a": 7}, {"t": "int", "v": "1"}, [1, 2]):
        bad = {**tree, "root": root}
        with pytest.raises(ValueError):
            dropcore.load(_zip_with({"dropcore/tree.json": json.dumps(bad)}))
    with pytest.raises(ValueError, match="version"):
        dropcore.load(_zip_with({"dropcore/tree.json": json.dumps({**tree, "version": 99})}))


def test_save_to_a_path_is_atomic(tmp_path):
    path = tmp_path / "ckpt.dcpt"
    dropcore.save({"a": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        dropcore.save({"a": 2, "b": Boom()}, path)
    assert dropcore.load(path) == {"a": 1}  # the old checkpoint survives a failed save
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.dcpt"]


def test_load_state_dict_accepts_numpy_exports():
    # What a PyTorch user exports with {k: v.numpy() for k, v in model.state_dict().items()}.
    src = nn.Linear(3, 2)
    exported = {k: v.numpy().copy() for k, v in src.state_dict().items()}
    dst = nn.Linear(3, 2)
    dst.load_state_dict(roundtrip(exported))
    np.testing.assert_array_equal(dst.weight.detach().numpy(), exported["weight"])
