"""dropcore.dask: every lazy function equals the NumPy functional on the whole array bit
for bit, for any chunking and scheduler (threads, processes, a real 2-process
LocalCluster), also after a worker is killed mid-computation; MC prediction over row
chunks equals mc.predict; a memory-mapped input 4x the chunk budget streams through in
about one chunk of memory."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="dropcore.dask needs Dask (the dask extra)")
import dask  # noqa: E402

import dropcore  # noqa: E402
import dropcore.dask as dd  # noqa: E402
import dropcore.nn as nn  # noqa: E402
import dropcore.nn.functional as F  # noqa: E402
from dropcore import mc  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # workers keep their BLAS threads; so does the reference
    threadpool_limits = None

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((7, 5, 6, 4)).astype(np.float32)  # (N, C, H, W)

# (function name, kwargs, the array it takes)
CASES = {
    "dropout": (dict(p=0.3), X4),
    "dropout_vanilla": (dict(p=0.3, inverted=False), X4),
    "alpha_dropout": (dict(p=0.3, training=True), X4),
    "dropout1d": (dict(p=0.4), X4[:, :, :, 0]),
    "dropout2d": (dict(p=0.4), X4),
    "dropout2d_3d": (dict(p=0.4), X4[0]),  # PyTorch reads it as (N, C, L), with a warning
    "dropout3d": (dict(p=0.4), X4[:, :, None].repeat(3, axis=2).astype(np.float64)),
    "feature_alpha_dropout": (dict(p=0.4, training=True), X4),
    "drop_path": (dict(p=0.4, training=True), X4),
    "drop_path_unscaled": (dict(p=0.4, training=True, scale_by_keep=False), X4.astype(np.float64)),
    "gaussian_dropout": (dict(p=0.3), X4),
    "gaussian_noise": (dict(stddev=0.5), X4),
    "gaussian_noise_odd": (dict(stddev=0.5), X4[:, :, :3, :3].astype(np.float64)),  # 315 elements: a half pair at the end
}

# 1 chunk, many, uneven, several dimensions chunked (per-dim chunk sizes, cut to the rank)
CHUNKINGS = {
    "one": lambda shape: shape,
    "many": lambda shape: tuple(1 if d < 2 else 2 for d in range(len(shape))),
    "uneven": lambda shape: (3,) + shape[1:],
    "2-D": lambda shape: (2, 2) + shape[2:],
    "all dims": lambda shape: tuple(max(1, s // 2 + 1) for s in shape),
}


def function(case):
    return case.replace("_vanilla", "").replace("_3d", "").replace("_unscaled", "").replace("_odd", "")


def expected_warning(case):
    """The functional's own warnings come through the lazy twin too."""
    if case == "dropout2d_3d":
        return pytest.warns(UserWarning, match="3D input to dropout2d")
    return contextlib.nullcontext()


def reference(case, seed=5, offset=3):
    kwargs, x = CASES[case]
    g = dropcore.Generator(seed, offset)
    with expected_warning(case):
        return getattr(F, function(case))(x, generator=g, **kwargs), g.get_state()


def lazy(case, chunks, seed=5, offset=3):
    kwargs, x = CASES[case]
    g = dropcore.Generator(seed, offset)
    with expected_warning(case):
        y = getattr(dd, function(case))(da.from_array(x, chunks=CHUNKINGS[chunks](x.shape)), generator=g, **kwargs)
    return y, g.get_state()


@pytest.mark.parametrize("chunks", list(CHUNKINGS))
@pytest.mark.parametrize("case", list(CASES))
def test_equals_the_one_array_result_bit_for_bit(case, chunks):
    ref, ref_state = reference(case)
    y, state = lazy(case, chunks)
    assert state == ref_state  # the generator advanced at graph construction, by the whole array's words
    got = y.compute(scheduler="threads")
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


def test_masks_are_really_random_and_differ_between_draws():
    """A lazy result that ignored the generator or the block position would repeat."""
    x = da.ones((64, 64), chunks=(16, 16), dtype=np.float32)
    g = dropcore.Generator(1)
    a, b = dd.dropout(x, 0.5, generator=g).compute(), dd.dropout(x, 0.5, generator=g).compute()
    assert not np.array_equal(a, b)
    blocks = [a[i : i + 16, j : j + 16] for i in range(0, 64, 16) for j in range(0, 64, 16)]
    assert len({blk.tobytes() for blk in blocks}) == len(blocks)
    keep = (a != 0).mean()
    assert abs(keep - 0.5) < 6 * np.sqrt(0.25 / a.size)


@pytest.mark.parametrize("shape,location", [
    ((5, 6, 7), [(1, 4), (0, 6), (0, 7)]),
    ((5, 6, 7), [(1, 4), (2, 5), (0, 7)]),
    ((5, 6, 7), [(1, 4), (2, 5), (3, 6)]),
    ((5, 6, 7), [(0, 5), (0, 6), (0, 7)]),
    ((9,), [(2, 7)]),
    ((4, 1, 3), [(3, 4), (0, 1), (1, 2)]),
])
def test_block_runs_cover_the_block_in_c_order(shape, location):
    """Against the global C-order indices of the block's elements (np.ravel_multi_index)."""
    grids = np.meshgrid(*[np.arange(a, b) for a, b in location], indexing="ij")
    want = np.ravel_multi_index([g.ravel() for g in grids], shape)
    starts, length = dd._block_runs(location, shape)
    got = (starts[:, None] + np.arange(length)[None, :]).ravel()
    np.testing.assert_array_equal(got, want)


def test_identity_cases_return_the_input_and_draw_nothing():
    x = da.from_array(X4, chunks=3)
    g = dropcore.Generator(0)
    assert dd.dropout(x, 0.5, training=False, generator=g) is x
    assert dd.dropout(x, 0.0, generator=g) is x
    assert dd.alpha_dropout(x, 0.5, generator=g) is x  # PyTorch's default training=False
    assert dd.drop_path(x, 0.5, generator=g) is x
    assert dd.gaussian_noise(x, 0.0, generator=g) is x
    assert g.offset == 0
    np.testing.assert_array_equal(dd.dropout(x, 0.25, training=False, inverted=False).compute(),
                                  F.dropout(X4, 0.25, training=False, inverted=False))


def test_bad_input():
    x = da.from_array(X4, chunks=3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        dd.dropout(x, 1.5)
    with pytest.raises(TypeError, match="dask.array.Array"):
        dd.dropout(X4, 0.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        dd.dropout(da.ones(4, dtype=np.int32), 0.5)
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):  # the functional's shape rules, PyTorch's error
        dd.dropout1d(da.ones((2, 3, 4, 5), dtype=np.float32), 0.5)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        dd.dropout(x[x[:, 0, 0, 0] > 0], 0.5)
    with pytest.raises(TypeError, match="dask.array.Array"):
        dd.mc_predict(make_model(), np.ones((3, 12), np.float32), samples=2)


# --- MC prediction -------------------------------------------------------------------

def make_model(hidden=16, classes=5):
    dropcore.manual_seed(0)
    return nn.Sequential(nn.Linear(12, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(hidden, classes))


XM = np.random.default_rng(1).standard_normal((61, 12)).astype(np.float32)
FIELDS = ("mean", "variance", "entropy", "mutual_information", "samples")


def assert_same_prediction(got, ref):
    for field in FIELDS:
        a, b = getattr(got, field), getattr(ref, field)
        if b is None:
            assert a is None
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, field
        np.testing.assert_array_equal(a, b, err_msg=field)


def mc_reference(model, x, blas_threads=None, **kwargs):
    if blas_threads is None or threadpool_limits is None:
        return mc.predict(model, x, **kwargs)
    with threadpool_limits(blas_threads, user_api="blas"):
        return mc.predict(model, x, **kwargs)


@pytest.mark.parametrize("chunks", [61, 20, (5, 30, 26), (1, 1, 59), 7])
def test_mc_predict_equals_mc_predict_on_the_whole_array(chunks):
    model = make_model()
    ref = mc.predict(model, XM, samples=6, generator=dropcore.Generator(3), return_samples=True)
    g = dropcore.Generator(3)
    r = dd.mc_predict(model, da.from_array(XM, chunks=(chunks, 5)), samples=6, generator=g, return_samples=True)
    assert g.offset == mc._plan(model, XM, len(XM), 6, None, dropcore.Generator(3)).words
    assert_same_prediction(r.compute(scheduler="threads"), ref)
    np.testing.assert_array_equal(r.prediction.compute(), ref.prediction)


def test_mc_predict_with_odd_widths_batch_size_and_float64():
    """An odd hidden width with an odd number of samples (the extra pass that keeps half-word
    masks on whole words), a batch_size that splits the passes, and a float64 model fed
    float32 inputs (cast to the model's dtype, as mc.predict does)."""
    model = make_model(hidden=7, classes=3).double()
    for batch_size in (None, 4):
        ref = mc.predict(model, XM, samples=5, batch_size=batch_size, generator=dropcore.Generator(8), return_samples=True)
        r = dd.mc_predict(model, da.from_array(XM, chunks=9), samples=5, batch_size=batch_size,
                          generator=dropcore.Generator(8), return_samples=True)
        assert_same_prediction(r.compute(), ref)
        assert ref.mean.dtype == np.float64


def test_mc_predict_snapshots_the_model_and_ships_it_as_one_key():
    model = make_model()
    r = dd.mc_predict(model, da.from_array(XM, chunks=10), samples=4, generator=dropcore.Generator(0))
    ref = mc.predict(model, XM, samples=4, generator=dropcore.Generator(0))
    graph = dict(r.mean.__dask_graph__())
    blocks = [k for k in graph if isinstance(k, tuple) and k[0].startswith("dropcore-mc-predict")]
    deps = {k: graph[k].dependencies for k in blocks}
    shared = set.intersection(*map(set, deps.values())) - {k for k in graph if "array" in str(k)}
    assert len(blocks) == 7 and len(shared) == 1  # every chunk task depends on one model key
    model[0].weight.detach().numpy()[...] = 0  # later changes do not reach the graph
    assert_same_prediction(r.compute(), ref)


# --- processes and a real cluster ----------------------------------------------------

def test_processes_scheduler():
    g = dropcore.Generator(2)
    x = da.from_array(X4, chunks=(2, 3, 6, 4))
    y = dd.dropout(x, 0.3, generator=g)
    z = dd.gaussian_dropout(x, 0.3, generator=g)
    model = make_model()
    r = dd.mc_predict(model, da.from_array(XM, chunks=17), samples=6, generator=g)
    ref_g = dropcore.Generator(2)
    refs = [F.dropout(X4, 0.3, generator=ref_g), F.gaussian_dropout(X4, 0.3, generator=ref_g)]
    ref = mc_reference(model, XM, blas_threads=1, samples=6, generator=ref_g)
    got = r.compute(scheduler="processes", num_workers=2)
    ys = da.compute(y, z, scheduler="processes", num_workers=2)
    for a, b in zip(ys, refs):
        np.testing.assert_array_equal(a, b)
    assert_same_prediction(got, ref)


distributed = pytest.importorskip("distributed", reason="the LocalCluster tests need dask.distributed (the dask extra)")


@pytest.fixture(scope="module")
def client():
    # generous start-up timeouts: on a loaded 2-core machine spawning and importing
    # two worker processes once took longer than distributed's defaults
    with dask.config.set({"distributed.comm.timeouts.connect": "120s", "distributed.deploy.lost-worker-timeout": "120s"}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                           timeout=120)
    c = distributed.Client(cluster, timeout=120)
    try:
        yield c
    finally:
        c.close(timeout=20)
        cluster.close(timeout=20)


def test_cluster_results_equal_the_one_array_results(client):
    cases = list(CASES)
    lazies, refs = [], []
    few = [c for c in CHUNKINGS if c != "many"]  # a few tasks each: the cluster's time goes per task
    for i, case in enumerate(cases):
        chunks = few[i % len(few)]
        lazies.append(lazy(case, chunks, seed=i)[0])
        refs.append(reference(case, seed=i)[0])
    got = client.compute(lazies, sync=True)
    for case, a, b in zip(cases, got, refs):
        np.testing.assert_array_equal(a, b, err_msg=case)
    # both workers took part, and each set dropcore's pool to its one core
    assert len(client.has_what()) == 2
    assert set(client.run(dropcore.get_num_threads).values()) == {1}


def test_cluster_mc_predict(client):
    model = make_model()
    ref = mc_reference(model, XM, blas_threads=1, samples=6, generator=dropcore.Generator(4), return_samples=True)
    r = dd.mc_predict(model, da.from_array(XM, chunks=8), samples=6, generator=dropcore.Generator(4), return_samples=True)
    assert_same_prediction(r.compute(), ref)


def test_cluster_mc_predict_with_module_generators(client):
    """The model travels by pickle, generators included; mc_predict draws from the given
    generator, never from the modules' own (as mc.predict), and leaves them untouched."""
    import pickle

    try:
        pickle.loads(pickle.dumps(dropcore.Generator(1)))
    except TypeError:
        pytest.skip("dropcore.Generator is not picklable on this branch yet (the toolkit branch adds it)")
    model = make_model()
    own = [dropcore.Generator(11), dropcore.Generator(12)]
    model[2].generator, model[5].generator = own
    ref = mc_reference(model, XM, blas_threads=1, samples=4, generator=dropcore.Generator(4))
    r = dd.mc_predict(model, da.from_array(XM, chunks=16), samples=4, generator=dropcore.Generator(4))
    assert_same_prediction(r.compute(), ref)
    assert [g.get_state() for g in own] == [(11, 0), (12, 0)]


def test_a_worker_killed_mid_computation_changes_nothing(client):
    """Kill a worker process while its tasks run: the nanny restarts it, the scheduler
    reruns the lost tasks, and the result is the same bits (tasks are pure)."""
    slow_identity = lambda block: (time.sleep(0.3), block)[1]  # noqa: E731  (a lambda travels by value)
    x = da.from_array(XM, chunks=4).map_blocks(slow_identity, dtype=XM.dtype)  # 16 chunks, ~0.3 s each
    model = make_model()
    ref = mc_reference(model, XM, blas_threads=1, samples=4, generator=dropcore.Generator(6))
    y = dd.dropout(x, 0.4, generator=dropcore.Generator(7))
    r = dd.mc_predict(model, x, samples=4, generator=dropcore.Generator(6))
    pids_before = client.run(os.getpid)
    futures = client.compute([y, r.mean, r.entropy])
    deadline = time.monotonic() + 20
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim, tasks = max(client.processing().items(), key=lambda kv: len(kv[1]))
    assert tasks and not all(f.done() for f in futures)  # really mid-computation
    os.kill(pids_before[victim], signal.SIGKILL)
    y_got, mean, entropy = client.gather(futures)
    np.testing.assert_array_equal(y_got, F.dropout(XM, 0.4, generator=dropcore.Generator(7)))
    np.testing.assert_array_equal(mean, ref.mean)
    np.testing.assert_array_equal(entropy, ref.entropy)
    client.wait_for_workers(2, timeout=30)
    assert set(client.run(os.getpid).values()) != set(pids_before.values())  # a worker was replaced


# --- memory --------------------------------------------------------------------------

MEMORY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, dask, dask.array as da
    import dropcore, dropcore.dask, dropcore.nn as nn

    mode, path, out_path = sys.argv[1:4]
    rows, width, chunk = map(int, sys.argv[4:7])

    class Memmapped:
        # maps only the rows a chunk asks for, so RSS counts the file pages of the
        # chunks in use, not those a mapping of the whole file would keep resident
        shape, dtype, ndim = (rows, width), np.dtype(np.float32), 2
        def __getitem__(self, key):
            key = key if isinstance(key, tuple) else (key,)
            start, stop, step = key[0].indices(rows)
            if stop <= start:
                return np.zeros((0, width), np.float32)[(slice(None),) + key[1:]]
            view = np.memmap(path, np.float32, "r", offset=start * width * 4, shape=(stop - start, width))
            return view[(slice(None, None, step),) + key[1:]]

    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

    dropcore.manual_seed(0)
    model = nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    x = da.from_array(Memmapped(), chunks=(chunk, width))
    out = np.lib.format.open_memmap(out_path, "w+", np.float32, (rows,))
    # warm-up on one chunk: lazy imports, thread pools and the BLAS's buffers are not the prediction's
    dropcore.mc.predict(model, x[:chunk].compute(), samples=8)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    base = status("VmRSS")
    if mode == "dask":
        r = dropcore.dask.mc_predict(model, x, samples=8, generator=dropcore.Generator(0))
        with dask.config.set(scheduler="threads", num_workers=1):
            da.store(r.entropy, out)
    else:  # the whole array in memory, for contrast
        out[:] = dropcore.mc.predict(model, x.compute(), samples=8, generator=dropcore.Generator(0)).entropy
    out.flush()
    print(base, status("VmHWM"))
""")


def peak_added(tmp_path, mode, rows, width, chunk):
    out = tmp_path / f"entropy-{mode}.npy"
    args = [mode, str(tmp_path / "x.f32"), str(out), str(rows), str(width), str(chunk)]
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    base, peak = map(int, proc.stdout.split())
    return peak - base, np.load(out)


def test_mc_over_a_memmap_4x_the_chunk_budget_peaks_near_one_chunk(tmp_path):
    """Peak RSS (VmHWM, reset before the prediction) of a fresh process: what predicting
    a memory-mapped input of 4 chunks adds stays under 2 chunks with dropcore.dask, while
    the one-array mc.predict adds more than the whole input (the measure can tell)."""
    rows, width, chunk = 2048, 4096, 512  # 32 MiB of float32 input in 8 MiB chunks
    mm = np.memmap(tmp_path / "x.f32", np.float32, "w+", shape=(rows, width))
    for i in range(0, rows, chunk):
        mm[i : i + chunk] = np.random.default_rng(i).random((chunk, width), dtype=np.float32)
    mm.flush()
    del mm
    chunk_bytes = chunk * width * 4
    added, got = peak_added(tmp_path, "dask", rows, width, chunk)
    whole, ref = peak_added(tmp_path, "numpy", rows, width, chunk)
    print(f"peak RSS added: dropcore.dask {added / chunk_bytes:.2f} chunks, whole array {whole / chunk_bytes:.2f}")
    assert added < 2 * chunk_bytes
    assert whole > 4 * chunk_bytes
    np.testing.assert_array_equal(got, ref)  # and the streamed result is the real one


def test_tasks_never_touch_the_shipped_model():
    """A distributed worker may pickle the shipped model for a peer while one of its own
    tasks runs: tasks work on a private copy, so the shipped object never shows MC
    state (wrapped forwards, flipped training flags) to a concurrent pickle."""
    import pickle
    import threading

    model = make_model()
    model.eval()
    r = dd.mc_predict(model, da.from_array(np.repeat(XM, 2, axis=0), chunks=4), samples=6,
                      generator=dropcore.Generator(0))
    shipped = next(v.value for k, v in dict(r.mean.__dask_graph__()).items() if str(k).startswith("Sequential"))
    seen, done = [], threading.Event()

    def snoop():
        while not done.is_set():
            copy_ = pickle.loads(pickle.dumps(shipped))
            seen.append([("forward" in m.__dict__, m.training) for m in copy_.modules()])

    t = threading.Thread(target=snoop)
    t.start()
    try:
        r.compute(scheduler="threads")
    finally:
        done.set()
        t.join()
    assert seen and all(state == [(False, False)] * len(state) for state in seen)


@pytest.mark.parametrize("name,kwargs,shape", [
    ("dropout", dict(p=0.5), (0, 4)),
    ("drop_path", dict(p=0.5, training=True), (3, 0)),
    ("feature_alpha_dropout", dict(p=0.5, training=True), (2, 0, 3)),
    ("gaussian_noise", dict(stddev=1.0), (0,)),
    ("dropout2d", dict(p=0.5), (2, 3, 0, 4)),
])
def test_empty_arrays_draw_what_the_functional_draws(name, kwargs, shape):
    x = np.zeros(shape, np.float32)
    g1, g2 = dropcore.Generator(0), dropcore.Generator(0)
    ref = getattr(F, name)(x, generator=g1, **kwargs)
    got = getattr(dd, name)(da.from_array(x), generator=g2, **kwargs).compute()
    assert g1.get_state() == g2.get_state() and got.shape == ref.shape


def test_errors_are_the_functionals():
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        dd.feature_alpha_dropout(da.ones(5, dtype=np.float32), 0.5, training=True)
    with pytest.raises(TypeError):
        dd.gaussian_noise(da.ones(5, dtype=np.float32), "1")
    with pytest.raises(ValueError, match="p < 1"):
        dd.gaussian_dropout(da.ones(5, dtype=np.float32), 1.0)
