"""Element dropout against memcpy, NumPy, and PyTorch / JAX when importable (SPEC §6).

Every figure in a table comes from the same run, so the ratios hold even on a noisy
machine. Rates are in millions of elements per second (Melem/s), float32, p = 0.5,
training mode. memcpy is ``np.copyto`` into a buffer that already exists, so dropcore
is compared writing into one too (``out=``); a call that returns a new array pays for
fresh pages (kernel page faults and zeroing) like any allocating op, so it is set
against ``x.copy()``, which pays the same.
"""

from __future__ import annotations

import numpy as np

from . import optional_import, print_table, timeit

P = 0.5
OWN = ("memcpy", "alloc copy", "dropcore", "dropcore out=", "dropcore in place", "dropcore fwd+bwd", "NumPy")


TORCH_MISSING = "PyTorch not installed: column omitted"


def _torch():
    """PyTorch if it imports, using as many threads as dropcore (a fair comparison)."""
    torch = optional_import("torch")
    if torch is not None:
        from .. import get_num_threads

        torch.set_num_threads(get_num_threads())
    return torch


def _peers():
    """Callables ``make(x) -> fn`` for the optional peers that import."""
    peers = {}
    torch = _torch()
    if torch is not None:

        def make_torch(x):
            t = torch.from_numpy(x)
            return lambda: torch.nn.functional.dropout(t, P, training=True)

        peers["PyTorch"] = make_torch
    jax = optional_import("jax")
    if jax is not None:
        jnp = jax.numpy

        @jax.jit
        def jax_dropout(key, x):
            keep = jax.random.bernoulli(key, 1.0 - P, x.shape)
            return jnp.where(keep, x / (1.0 - P), 0.0)

        def make_jax(x):
            xj = jnp.asarray(x)
            key = jax.random.PRNGKey(0)
            return lambda: jax_dropout(key, xj).block_until_ready()

        peers["JAX jit"] = make_jax
    return peers


def measure(n: int, min_time: float = 0.2, repeat: int = 5) -> dict[str, float]:
    """Seconds per call of each contender on ``n`` float32 elements."""
    from ..dropout import dropout
    from ..random import Generator

    x = np.random.default_rng(0).random(n, dtype=np.float32)
    grad = np.random.default_rng(1).random(n, dtype=np.float32)
    dst, dx = np.empty_like(x), np.empty_like(x)
    rng = np.random.default_rng(1)
    gen = Generator(0)

    def forward_backward():
        seed, offset = gen.take(n)
        dropout(x, P, generator=Generator(seed, offset), out=dst)
        # Backward: the same map on the incoming gradient, mask recomputed from (seed, offset).
        dropout(grad, P, generator=Generator(seed, offset), out=dx)

    timings = {
        "memcpy": timeit(lambda: np.copyto(dst, x), min_time, repeat),
        "alloc copy": timeit(lambda: x.copy(), min_time, repeat),
        "dropcore": timeit(lambda: dropout(x, P, generator=gen), min_time, repeat),
        "dropcore out=": timeit(lambda: dropout(x, P, generator=gen, out=dst), min_time, repeat),
        "dropcore in place": timeit(lambda: dropout(dst, P, inplace=True, generator=gen), min_time, repeat),
        "dropcore fwd+bwd": timeit(forward_backward, min_time, repeat),
        "NumPy": timeit(lambda: x * (rng.random(n) >= P) / (1 - P), min_time, max(1, repeat // 2)),
    }
    for name, make in _peers().items():
        timings[name] = timeit(make(x), min_time, max(1, repeat // 2))
    return timings


def run(quick: bool = False) -> list[str]:
    """Print the element-dropout table; returns the printed text."""
    from .. import get_num_threads
    from .._core import simd_isa

    sizes = [10**4, 10**5, 10**6, 10**7] if quick else [10**4, 10**5, 10**6, 10**7, 10**8]
    min_time, repeat = (0.05, 3) if quick else (0.25, 5)
    rows, extra = [], None
    for n in sizes:
        t = measure(n, min_time, repeat)
        peers = [k for k in t if k not in OWN]
        extra = peers

        def rate(k):
            return n / t[k] / 1e6

        row = [
            f"{n:.0e}",
            f"{rate('memcpy'):,.0f}",
            f"{rate('dropcore out='):,.0f} ({t['memcpy'] / t['dropcore out=']:.2f}x)",
            f"{rate('dropcore in place'):,.0f} ({t['memcpy'] / t['dropcore in place']:.2f}x)",
            f"{rate('dropcore fwd+bwd'):,.0f} ({2 * t['memcpy'] / t['dropcore fwd+bwd']:.2f}x)",
            f"{rate('dropcore'):,.0f} ({t['alloc copy'] / t['dropcore']:.2f}x)",
            f"{rate('NumPy'):,.0f} ({t['NumPy'] / t['dropcore']:.0f}x slower)",
        ]
        row += [f"{rate(k):,.0f} ({t[k] / t['dropcore']:.1f}x slower)" for k in peers]
        row.append(f"{t['dropcore'] * 1e6:,.1f}")
        rows.append(row)
    headers = [
        "elements",
        "memcpy Melem/s",
        "dropcore fwd, out= (x memcpy)",
        "in place (x memcpy)",
        "fwd+bwd (x 2 memcpy)",
        "fwd, new array (x x.copy())",
        "NumPy one-liner",
        *(extra or []),
        "dropcore us/call",
    ]
    title = f"Element dropout, float32, p={P}, {get_num_threads()} threads, {simd_isa()}"
    tables = [print_table(title, headers, rows), small_call(min_time, repeat)]
    if "PyTorch" not in (extra or []):
        print(TORCH_MISSING + "\n", flush=True)
        tables.append(TORCH_MISSING + "\n")
    return tables


def small_call(min_time: float, repeat: int, n: int = 10**4) -> str:
    """One line: what an ``n``-element call costs beside the Philox words it draws.

    Issue 11's bound for a small call is its words plus 1 us. The words alone are timed
    through ``_core.philox_words`` (a binding call that also allocates the array), so
    the comparison is call against call.
    """
    from .._core import philox_words
    from ..dropout import dropout
    from ..random import Generator

    x = np.random.default_rng(0).random(n, dtype=np.float32)
    dst = np.empty_like(x)
    gen = Generator(0)
    words = (n + 1) // 2
    t_out = timeit(lambda: dropout(x, P, generator=gen, out=dst), min_time, repeat)
    t_new = timeit(lambda: dropout(x, P, generator=gen), min_time, repeat)
    t_words = timeit(lambda: philox_words(1, 0, words), min_time, repeat)
    text = (
        f"{n:.0e}-element call: {t_out * 1e6:.2f} us with out=, {t_new * 1e6:.2f} us with a new array; "
        f"its {words:,} Philox words alone (philox_words): {t_words * 1e6:.2f} us, so the call costs "
        f"words + {(t_out - t_words) * 1e6:.2f} us (out=) / + {(t_new - t_words) * 1e6:.2f} us (new array)\n"
    )
    print(text, flush=True)
    return text


def headline(quick: bool = True) -> list[str]:
    """The rows the demo shows: 1e6 and 1e7 elements."""
    from .. import get_num_threads

    rows = []
    for n in (10**6, 10**7):
        t = measure(n, 0.05 if quick else 0.2, 3)
        rows.append(
            [
                f"{n:.0e}",
                f"{n / t['memcpy'] / 1e6:,.0f}",
                f"{n / t['dropcore out='] / 1e6:,.0f} ({t['memcpy'] / t['dropcore out=']:.2f}x)",
                f"{n / t['NumPy'] / 1e6:,.0f}",
                f"{t['NumPy'] / t['dropcore out=']:.0f}x",
            ]
        )
    headers = ["elements", "memcpy Melem/s", "dropcore out= Melem/s (x memcpy)", "NumPy Melem/s", "dropcore vs NumPy"]
    return [print_table(f"Dropout speed, float32, p={P}, {get_num_threads()} threads", headers, rows)]
