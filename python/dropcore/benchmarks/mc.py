"""MC dropout: 30 samples x batch 1024 on d2l's MLP, dropcore's batched ``mc.predict``
against a per-sample loop (dropcore, and PyTorch when importable)."""

from __future__ import annotations

import numpy as np

from . import optional_import, print_table, timeit
from .mlp import P1, P2, _dropcore_model, _torch_model

SAMPLES, BATCH = 30, 1024


def run(quick: bool = False) -> list[str]:
    from .. import Generator, get_num_threads, no_grad, tensor
    from .. import mc

    min_time, repeat = (0.1, 2) if quick else (0.5, 3)
    x = np.random.default_rng(0).random((BATCH, 784), dtype=np.float32)
    model, _, _ = _dropcore_model()
    xt = tensor(x)

    def loop():
        model.train()
        with no_grad():
            probs = []
            for _ in range(SAMPLES):
                z = model(xt)._data
                e = np.exp(z - z.max(1, keepdims=True))
                probs.append(e / e.sum(1, keepdims=True))
        return np.mean(probs, axis=0)

    gen = Generator(0)
    t = {
        "batched": timeit(lambda: mc.predict(model, x, SAMPLES, generator=gen), min_time, repeat),
        "loop": timeit(loop, min_time, repeat),
    }
    torch = optional_import("torch")
    if torch is not None:
        tm, _, _ = _torch_model(torch)
        tx = torch.from_numpy(x)

        def torch_loop():
            tm.train()
            with torch.no_grad():
                return torch.stack([torch.softmax(tm(tx), 1) for _ in range(SAMPLES)]).mean(0)

        t["PyTorch loop"] = timeit(torch_loop, min_time, repeat)
    rows = [["dropcore mc.predict (tiled batch, first layer once)", f"{t['batched'] * 1e3:.1f}", "1.00x"],
            ["dropcore per-sample loop", f"{t['loop'] * 1e3:.1f}", f"{t['batched'] / t['loop']:.2f}x"]]
    if torch is not None:
        rows.append(["PyTorch per-sample loop", f"{t['PyTorch loop'] * 1e3:.1f}", f"{t['batched'] / t['PyTorch loop']:.2f}x"])
    title = f"MC dropout, {SAMPLES} samples x batch {BATCH}, d2l MLP (dropout {P1}/{P2}), {get_num_threads()} threads"
    return [print_table(title, ["method", "ms per prediction", "speed relative to mc.predict"], rows)]
