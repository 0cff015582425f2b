"""The dropout family at 1e7 float32 elements against memcpy, and DropConnect against
the plain linear layer (batch 256, 1024 x 1024), all from one run.

Every variant returns a new array, so besides ``np.copyto`` (memcpy into an existing
buffer) the table gives the ratio to ``x.copy()``, which pays for fresh pages too.
"""

from __future__ import annotations

import numpy as np

from . import print_table, timeit
from .dropout import TORCH_MISSING, _torch


def _torch_contenders(torch, x: np.ndarray) -> dict:
    """PyTorch's own forms of the variants it has (training mode, new tensors)."""
    if torch is None:
        return {}
    tf = torch.nn.functional
    t = torch.from_numpy(x)
    return {
        "dropout": lambda: tf.dropout(t, 0.5, training=True),
        "Dropout2d": lambda: tf.dropout2d(t, 0.5, training=True),
        "AlphaDropout": lambda: tf.alpha_dropout(t, 0.5, training=True),
        "FeatureAlphaDropout": lambda: tf.feature_alpha_dropout(t, 0.5, training=True),
    }


def run(quick: bool = False) -> list[str]:
    from .. import Generator, get_num_threads, no_grad, tensor
    from .. import functional as F
    from ..nn import DropConnectLinear, Linear

    min_time, repeat = (0.05, 2) if quick else (0.25, 5)
    shape = (100, 100, 32, 32)  # 1.024e7 elements; channels of 1024
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    n = x.size
    dst = np.empty_like(x)
    g = Generator(0)
    contenders = {
        "memcpy (np.copyto)": lambda: np.copyto(dst, x),
        "x.copy()": lambda: x.copy(),
        "dropout, out=": lambda: F.dropout(x, 0.5, generator=g, out=dst),
        "dropout": lambda: F.dropout(x, 0.5, generator=g),
        "dropout, inverted=False": lambda: F.dropout(x, 0.5, generator=g, inverted=False),
        "Dropout2d, out=": lambda: F.dropout2d(x, 0.5, generator=g, out=dst),
        "Dropout2d": lambda: F.dropout2d(x, 0.5, generator=g),
        "AlphaDropout": lambda: F.alpha_dropout(x, 0.5, training=True, generator=g),
        "FeatureAlphaDropout": lambda: F.feature_alpha_dropout(x, 0.5, training=True, generator=g),
        "GaussianDropout": lambda: F.gaussian_dropout(x, 0.5, generator=g),
        "GaussianDropout, out=": lambda: F.gaussian_dropout(x, 0.5, generator=g, out=dst),
        "GaussianNoise": lambda: F.gaussian_noise(x, 0.1, generator=g),
        "GaussianNoise, out=": lambda: F.gaussian_noise(x, 0.1, generator=g, out=dst),
        "DropBlock2d (block 5)": lambda: F.drop_block2d(x, 0.1, 5, generator=g),
        "DropBlock2d (block 5), out=": lambda: F.drop_block2d(x, 0.1, 5, generator=g, out=dst),
        "DropPath": lambda: F.drop_path(x, 0.5, training=True, generator=g),
    }
    t = {k: timeit(fn, min_time, repeat) for k, fn in contenders.items()}
    torch = _torch()
    peer = {k: timeit(fn, min_time, max(1, repeat // 2)) for k, fn in _torch_contenders(torch, x).items()}
    memcpy, alloc = t["memcpy (np.copyto)"], t["x.copy()"]
    headers = ["variant", "Melem/s", "x memcpy", "x x.copy()"]
    rows = [[k, f"{n / v / 1e6:,.0f}", f"{memcpy / v:.2f}x", f"{alloc / v:.2f}x"] for k, v in t.items()]
    if torch is not None:
        headers.append("PyTorch Melem/s (dropcore speed-up)")
        for row, k in zip(rows, t):
            row.append(f"{n / peer[k] / 1e6:,.0f} ({peer[k] / t[k]:.1f}x)" if k in peer else "-")
    tables = [print_table(
        f"Dropout family, {n:.2e} float32 elements, {get_num_threads()} threads",
        headers, rows,
    )]
    if torch is None:
        print(TORCH_MISSING + "\n", flush=True)
        tables.append(TORCH_MISSING + "\n")

    xb = tensor(np.random.default_rng(1).standard_normal((256, 1024), dtype=np.float32))
    plain = Linear(1024, 1024)
    shared = DropConnectLinear(1024, 1024, 0.5)
    per_sample = DropConnectLinear(1024, 1024, 0.5, per_sample=True)

    def fwd(m):
        with no_grad():
            return m(xb)

    def fwd_bwd(m):
        xr = tensor(xb._data, requires_grad=True)
        m(xr).sum().backward()

    rows = []
    base_f = timeit(lambda: fwd(plain), min_time, repeat)
    base_b = timeit(lambda: fwd_bwd(plain), min_time, repeat)
    for name, m in (("Linear", plain), ("DropConnectLinear, shared mask", shared),
                    ("DropConnectLinear, per-example masks", per_sample)):
        tf = base_f if m is plain else timeit(lambda: fwd(m), min_time, repeat)
        tb = base_b if m is plain else timeit(lambda: fwd_bwd(m), min_time, repeat)
        rows.append([name, f"{tf * 1e3:.2f}", f"{tf / base_f:.1f}x", f"{tb * 1e3:.2f}", f"{tb / base_b:.1f}x"])
    tables.append(print_table(
        "DropConnect vs Linear, batch 256, 1024 -> 1024, float32",
        ["layer", "forward ms", "x Linear", "fwd+bwd ms", "x Linear"], rows,
    ))
    return tables
