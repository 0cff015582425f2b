"""d2l's dropout MLP (784-256-256-10, dropout 0.2 and 0.5, batch 256, SGD): one training
step and eval-mode inference, dropcore against a NumPy-only implementation of the same
model and against PyTorch when importable (SPEC §6)."""

from __future__ import annotations

import numpy as np

from . import optional_import, print_table, timeit

SIZES = (784, 256, 256, 10)
P1, P2 = 0.2, 0.5
LR = 0.1


def _data(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((batch, SIZES[0]), dtype=np.float32), rng.integers(0, 10, batch)


class NumpyMLP:
    """The same network written directly in NumPy: forward, backward and SGD by hand."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.params = []
        for a, b in zip(SIZES[:-1], SIZES[1:]):
            bound = 1 / np.sqrt(a)
            self.params.append([rng.uniform(-bound, bound, (b, a)).astype(np.float32),
                                rng.uniform(-bound, bound, b).astype(np.float32)])
        self.rng = np.random.default_rng(seed + 1)

    def forward(self, x, train: bool):
        (w1, b1), (w2, b2), (w3, b3) = self.params
        h1 = np.maximum(x @ w1.T + b1, 0)
        m1 = (self.rng.random(h1.shape, dtype=np.float32) >= P1) / np.float32(1 - P1) if train else None
        d1 = h1 * m1 if train else h1
        h2 = np.maximum(d1 @ w2.T + b2, 0)
        m2 = (self.rng.random(h2.shape, dtype=np.float32) >= P2) / np.float32(1 - P2) if train else None
        d2 = h2 * m2 if train else h2
        return d2 @ w3.T + b3, (x, h1, m1, d1, h2, m2, d2)

    def train_step(self, x, y) -> float:
        logits, (x, h1, m1, d1, h2, m2, d2) = self.forward(x, True)
        (w1, _), (w2, _), (w3, _) = self.params
        z = logits - logits.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        n = len(y)
        loss = -np.log(p[np.arange(n), y]).mean()
        g = p
        g[np.arange(n), y] -= 1
        g /= n
        grads = [None, None, None]
        grads[2] = (g.T @ d2, g.sum(0))
        g = (g @ w3) * m2 * (h2 > 0)
        grads[1] = (g.T @ d1, g.sum(0))
        g = (g @ w2) * m1 * (h1 > 0)
        grads[0] = (g.T @ x, g.sum(0))
        for (w, b), (gw, gb) in zip(self.params, grads):
            w -= np.float32(LR) * gw
            b -= np.float32(LR) * gb
        return float(loss)


def _dropcore_model():
    from .. import manual_seed, nn, optim

    manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Dropout(P1),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(P2),
        nn.Linear(256, 10),
    )
    return model, optim.SGD(model.parameters(), lr=LR), nn.CrossEntropyLoss()


def _torch_model(torch):
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Dropout(P1),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(P2),
        nn.Linear(256, 10),
    )
    return model, torch.optim.SGD(model.parameters(), lr=LR), nn.CrossEntropyLoss()


def run(quick: bool = False) -> list[str]:
    from .. import get_num_threads, no_grad, tensor

    min_time, repeat = (0.1, 3) if quick else (0.5, 5)
    x, y = _data(256)
    xe, _ = _data(8192, seed=1)

    model, opt, loss_fn = _dropcore_model()
    xt, xet = tensor(x), tensor(xe)

    def dc_step():
        opt.zero_grad()
        loss_fn(model(xt), y).backward()
        opt.step()

    def dc_eval():
        model.eval()
        with no_grad():
            return model(xet)

    ref = NumpyMLP()
    t = {
        "dropcore step": timeit(lambda: (model.train(), dc_step()), min_time, repeat),
        "NumPy step": timeit(lambda: ref.train_step(x, y), min_time, repeat),
        "dropcore eval": timeit(dc_eval, min_time, repeat),
        "NumPy eval": timeit(lambda: ref.forward(xe, False), min_time, repeat),
    }
    torch = optional_import("torch")
    if torch is not None:
        tm, topt, tloss = _torch_model(torch)
        tx, ty, txe = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xe)

        def torch_step():
            tm.train()
            topt.zero_grad()
            tloss(tm(tx), ty).backward()
            topt.step()

        def torch_eval():
            tm.eval()
            with torch.no_grad():
                return tm(txe)

        t["PyTorch step"] = timeit(torch_step, min_time, repeat)
        t["PyTorch eval"] = timeit(torch_eval, min_time, repeat)

    rows = []
    for what, label in (("step", "training step, batch 256"), ("eval", "eval inference, batch 8192")):
        row = [label, f"{t['dropcore ' + what] * 1e3:.2f}", f"{t['NumPy ' + what] * 1e3:.2f}",
               f"{t['NumPy ' + what] / t['dropcore ' + what]:.2f}x"]
        if torch is not None:
            row += [f"{t['PyTorch ' + what] * 1e3:.2f}", f"{t['PyTorch ' + what] / t['dropcore ' + what]:.2f}x"]
        rows.append(row)
    headers = ["d2l MLP 784-256-256-10", "dropcore ms", "NumPy ms", "dropcore speed-up vs NumPy"]
    if torch is not None:
        headers += ["PyTorch ms", "dropcore speed-up vs PyTorch"]
    return [print_table(f"MLP with dropout 0.2/0.5, float32, {get_num_threads()} threads", headers, rows)]
