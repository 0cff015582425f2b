"""dropcore.dask.mc_predict on d2l's MLP against plain mc.predict: throughput with the
threaded scheduler and with a LocalCluster of 1 and 2 single-threaded worker processes,
and the overhead each chunk (task) adds.

    python bench/bench_dask.py [--quick]

Prints Markdown tables (best of a few runs each; this machine is shared, so compare
rows of one run, not runs). Needs the dask extra.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time

import numpy as np

import dask
import dask.array as da
import dropcore
import dropcore.dask
from dropcore import mc
from dropcore.benchmarks import print_table
from dropcore.benchmarks.mlp import _dropcore_model

SAMPLES = 30


def best_of(fn, repeat: int) -> float:
    fn()  # warm-up (imports, pools, the model reaching the workers' memory)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def blas_threads(n: int):
    """Limit the BLAS to ``n`` threads inside a ``with`` (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n, user_api="blas")


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:
        return platform.processor() or "unknown CPU"


def main(quick: bool) -> None:
    from distributed import Client, LocalCluster

    rows, chunk, repeat = (2048, 512, 2) if quick else (8192, 1024, 3)
    per_forward = 512  # inputs per forward (batch_size = SAMPLES x this): chunks are multiples, no padding
    batch = SAMPLES * per_forward
    model, _, _ = _dropcore_model()
    # the chunks are made where they are used (as when reading from storage), not shipped
    xd = da.random.default_rng(0).random((rows, 784), chunks=(chunk, 784)).astype(np.float32)
    x = xd.compute()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, SIMD {dropcore._core.simd_isa()}; "
          f"{rows} inputs x {SAMPLES} samples, d2l MLP 784-256-256-10; chunks of {chunk} rows; "
          f"mc.predict forwards of {per_forward} inputs\n")

    def plain():
        mc.predict(model, x, SAMPLES, batch_size=batch, generator=dropcore.Generator(0))

    def lazy(**kw):
        return lambda: dropcore.dask.mc_predict(model, xd, SAMPLES, batch_size=batch,
                                                generator=dropcore.Generator(0)).compute(**kw)

    t = {"mc.predict, 2 threads (dropcore + BLAS)": best_of(plain, repeat)}
    threads = dropcore.get_num_threads()
    dropcore.set_num_threads(1)
    with blas_threads(1):
        t["mc.predict, 1 thread (dropcore + BLAS)"] = best_of(plain, repeat)
    dropcore.set_num_threads(threads)
    t["dropcore.dask, threaded scheduler (2 threads)"] = best_of(lazy(scheduler="threads"), repeat)

    # overhead per chunk: the same 64 small forwards (batch_size fixes 2 inputs per
    # forward) as 64 tasks and as 1 task; the difference is what a task costs
    n_small, small = 64, 2
    xs = x[: n_small * small]
    bs = small * SAMPLES

    def lazy_small(chunk_rows, **kw):
        xd_small = xd[: len(xs)].rechunk((chunk_rows, 784))
        return lambda: dropcore.dask.mc_predict(model, xd_small, SAMPLES, batch_size=bs,
                                                generator=dropcore.Generator(0)).compute(**kw)

    def per_task(**kw):
        many, one = best_of(lazy_small(small, **kw), repeat), best_of(lazy_small(len(xs), **kw), repeat)
        return many, one, (many - one) / (n_small - 1)

    over = {"threaded scheduler": per_task(scheduler="threads")}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            t[f"dropcore.dask, LocalCluster {workers} worker(s) x 1 thread"] = best_of(lazy(), repeat)
            if workers == 1:
                over["LocalCluster, 1 worker"] = per_task()
            client.close()

    ref = t["mc.predict, 2 threads (dropcore + BLAS)"]
    rows_t = [[name, f"{sec * 1e3:,.0f}", f"{rows * SAMPLES / sec / 1e3:,.1f}", f"{ref / sec:.2f}x"]
              for name, sec in t.items()]
    print_table(f"MC dropout over {rows} inputs (d2l MLP, {SAMPLES} samples)",
                ["how", "ms", "k input-passes/s", "speed vs mc.predict (2 threads)"], rows_t)
    print_table(f"Overhead per chunk: {len(xs)} inputs x {SAMPLES} samples in forwards of {small} inputs, "
                f"as {n_small} chunks and as 1",
                ["scheduler", f"{n_small} chunks, ms", "1 chunk, ms", "ms per extra chunk"],
                [[k, f"{m * 1e3:.1f}", f"{o * 1e3:.1f}", f"{d * 1e3:.2f}"] for k, (m, o, d) in over.items()])


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
