"""``python -m dropcore demo``: the lecture notes' experiments, run with dropcore.

1. Dropout as regularisation: an MLP on the digits with p in {0, 0.2, 0.5, 0.8};
   train and test curves ("overfitting / a bit of dropout / too much: underfitting").
2. Going deeper (Fleuret, EE-559 §6): a depth-16, width-32 MLP on the 2-D disc
   problem; test error against the initial weights' standard deviation, with and
   without BatchNorm.
3. The ensemble view: weight scaling (plain eval) against MC averaging over growing
   numbers of dropout samples, and the uncertainty of right and wrong predictions.
4. Speed: element dropout against memcpy and NumPy.

Everything runs on embedded data (no download); plots go to ``--out`` as PNG files.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import data, mc, nn, optim
from .random import manual_seed
from .tensor import Tensor, no_grad

__all__ = ["run", "DemoConfig"]


@dataclass
class DemoConfig:
    """Sizes of the experiments; ``quick()`` is the under-a-minute version the tests run."""

    reg_epochs: int = 150
    reg_hidden: int = 512
    reg_train_fraction: float = 0.3
    ps: tuple[float, ...] = (0.0, 0.2, 0.5, 0.8)
    deep_depth: int = 16
    deep_width: int = 32
    deep_stds: tuple[float, ...] = tuple(float(s) for s in np.logspace(-3, 1, 13))
    deep_steps: int = 1500
    deep_train: int = 1000
    ens_epochs: int = 120
    ens_samples: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)
    bench_quick: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(
            reg_epochs=12,
            reg_hidden=128,
            ps=(0.0, 0.5, 0.8),
            deep_stds=(0.001, 0.1, 10.0),
            deep_steps=120,
            deep_train=400,
            ens_epochs=12,
            ens_samples=(1, 5, 20),
            bench_quick=True,
        )


# ----------------------------------------------------------------------------- training
def _progress(iterable, desc: str, total: int | None = None, leave: bool = False):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)


def _evaluate(model, x: np.ndarray, y: np.ndarray, loss_fn) -> tuple[float, float]:
    model.eval()
    with no_grad(), np.errstate(all="ignore"):
        logits = model(Tensor(x))
        loss = float(loss_fn(logits, y).item())
        acc = float((np.nan_to_num(logits._data).argmax(1) == y).mean())
    return loss, acc


def _fit(model, opt, xtr, ytr, xte, yte, epochs, batch_size, seed, desc):
    """Minibatch training; returns per-epoch train/test loss and accuracy."""
    loss_fn = nn.CrossEntropyLoss()
    hist = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    for epoch in _progress(range(epochs), desc):
        model.train()
        for xb, yb in data.minibatches(xtr, ytr, batch_size, seed=seed * 100_003 + epoch):
            opt.zero_grad()
            loss_fn(model(Tensor(xb)), yb).backward()
            opt.step()
        for split, (xs, ys) in (("train", (xtr, ytr)), ("test", (xte, yte))):
            loss, acc = _evaluate(model, xs, ys, loss_fn)
            hist[f"{split}_loss"].append(loss)
            hist[f"{split}_acc"].append(acc)
    return hist


def _mlp(sizes, p: float) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if p > 0:
                layers.append(nn.Dropout(p))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- experiments
def regularisation(cfg: DemoConfig, seed: int):
    """Experiment 1: training curves on the digits for several dropout rates."""
    xtr, ytr, xte, yte = data.load_digits(test_fraction=1 - cfg.reg_train_fraction, seed=seed)
    results = {}
    for p in cfg.ps:
        manual_seed(seed)
        model = _mlp([64, cfg.reg_hidden, cfg.reg_hidden, 10], p)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        results[p] = _fit(model, opt, xtr, ytr, xte, yte, cfg.reg_epochs, 32, seed, f"dropout p={p}")
    return results


def _deep_net(depth: int, width: int, std: float, batchnorm: bool) -> nn.Sequential:
    """The notes' ``create_model``: Linear(2, nc), then ``depth`` times Linear(nc, nc),
    each followed by [BatchNorm1d] and ReLU, then Linear(nc, 2); weights ~ N(0, std).

    Unlike the notes (``p.data.normal_(0, std)`` on every parameter) biases start at 0
    and BatchNorm's affine parameters keep their defaults, so the figure isolates the
    scale of the weights.
    """
    layers: list = []
    for a in [2] + [width] * depth:
        layers.append(nn.Linear(a, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(width, 2))
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
    return net


def going_deeper(cfg: DemoConfig, seed: int):
    """Experiment 2: test error against the init std, with and without BatchNorm."""
    xtr, ytr = data.make_disc(cfg.deep_train, seed=seed)
    xte, yte = data.make_disc(1000, seed=seed + 1)
    loss_fn = nn.CrossEntropyLoss()
    errors = {False: [], True: []}
    runs = [(bn, s) for bn in (False, True) for s in cfg.deep_stds]
    for bn, std in _progress(runs, "going deeper", total=len(runs)):
        manual_seed(seed)
        net = _deep_net(cfg.deep_depth, cfg.deep_width, std, bn)
        opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        rng = np.random.default_rng(seed)
        with np.errstate(all="ignore"):
            for _ in range(cfg.deep_steps):
                idx = rng.integers(0, len(xtr), 100)
                net.train()
                opt.zero_grad()
                loss = loss_fn(net(Tensor(xtr[idx])), ytr[idx])
                if not math.isfinite(loss.item()):
                    break  # diverged: the error stays at what the network predicts now
                loss.backward()
                opt.step()
        errors[bn].append(1.0 - _evaluate(net, xte, yte, loss_fn)[1])
    return errors


def ensemble(cfg: DemoConfig, seed: int):
    """Experiment 3: weight scaling vs MC averaging, and MC uncertainty."""
    xtr, ytr, xte, yte = data.load_digits(test_fraction=0.5, seed=seed)
    manual_seed(seed)
    model = _mlp([64, 256, 256, 10], 0.5)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    _fit(model, opt, xtr, ytr, xte, yte, cfg.ens_epochs, 32, seed, "ensemble model")
    scaled_acc = _evaluate(model, xte, yte, nn.CrossEntropyLoss())[1]
    from .random import Generator

    mc_acc = []
    for t in _progress(cfg.ens_samples, "MC samples", total=len(cfg.ens_samples)):
        # Three independent MC runs per sample count: their spread shows the MC noise.
        accs = [float((mc.predict(model, xte, t, generator=Generator(seed + r)).prediction == yte).mean()) for r in range(3)]
        mc_acc.append(accs)
    final = mc.predict(model, xte, max(cfg.ens_samples), generator=Generator(seed))
    correct = final.prediction == yte
    return {
        "scaled_acc": scaled_acc,
        "samples": list(cfg.ens_samples),
        "mc_acc": mc_acc,
        "entropy": final.entropy,
        "bald": final.mutual_information,
        "correct": correct,
    }


# ----------------------------------------------------------------------------- plots
def _plot_regularisation(results, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(results)))
    for (p, h), c in zip(results.items(), colors):
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        ax_loss.plot(epochs, h["train_loss"], "--", color=c, alpha=0.8)
        ax_loss.plot(epochs, h["test_loss"], "-", color=c, label=f"p = {p}")
        ax_acc.plot(epochs, h["train_acc"], "--", color=c, alpha=0.8)
        ax_acc.plot(epochs, h["test_acc"], "-", color=c, label=f"p = {p}")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss (dashed: train, solid: test)", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy (dashed: train, solid: test)")
    ax_acc.legend(title="dropout")
    fig.suptitle("Dropout as regularisation: MLP on the digits, 30% of them for training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_deeper(cfg: DemoConfig, errors, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(cfg.deep_stds, errors[False], "o-", label="without BatchNorm")
    ax.plot(cfg.deep_stds, errors[True], "s-", label="with BatchNorm")
    ax.axhline(0.5, color="gray", ls=":", lw=1, label="chance")
    ax.set(
        xscale="log",
        xlabel="standard deviation of the initial weights",
        ylabel="test error",
        title=f"Going deeper: depth {cfg.deep_depth}, width {cfg.deep_width}, disc problem",
        ylim=(0, 0.6),
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ensemble(res, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_unc) = plt.subplots(1, 2, figsize=(12, 4.5))
    accs = np.array(res["mc_acc"])
    ax_acc.errorbar(res["samples"], accs.mean(1), yerr=[accs.mean(1) - accs.min(1), accs.max(1) - accs.mean(1)],
                    fmt="o-", capsize=3, label="MC averaging (min/mean/max of 3 runs)")
    ax_acc.axhline(res["scaled_acc"], color="C1", ls="--", label="weight scaling (eval mode)")
    ax_acc.set(xscale="log", xlabel="dropout samples T", ylabel="test accuracy", title="Two ways to average the ensemble")
    ax_acc.legend()
    c = res["correct"]
    bins = np.linspace(0, max(float(res["entropy"].max()), 1e-3), 30)
    ax_unc.hist(res["entropy"][c], bins=bins, alpha=0.6, density=True, label=f"correct ({c.sum()})")
    ax_unc.hist(res["entropy"][~c], bins=bins, alpha=0.6, density=True, label=f"misclassified ({(~c).sum()})")
    ax_unc.set(xlabel="predictive entropy (nats)", ylabel="density", title="MC uncertainty: right vs wrong")
    ax_unc.legend()
    fig.suptitle("The ensemble view of dropout (digits, p = 0.5)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def run(quick: bool = False, out: str | Path = "dropcore-demo", seed: int = 0) -> dict:
    """Run every experiment, write the plots into ``out`` and print a summary."""
    import matplotlib

    matplotlib.use("Agg")
    from .benchmarks import print_table
    from .benchmarks import dropout as bench_dropout

    cfg = DemoConfig.quick() if quick else DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings = {}

    print("dropcore demo: the lecture notes' experiments" + (" (quick)" if quick else ""), flush=True)
    t = time.perf_counter()
    reg = regularisation(cfg, seed)
    _plot_regularisation(reg, out / "regularisation.png")
    timings["regularisation"] = time.perf_counter() - t

    t = time.perf_counter()
    deep = going_deeper(cfg, seed)
    _plot_deeper(cfg, deep, out / "going_deeper.png")
    timings["going deeper"] = time.perf_counter() - t

    t = time.perf_counter()
    ens = ensemble(cfg, seed)
    _plot_ensemble(ens, out / "ensemble.png")
    timings["ensemble"] = time.perf_counter() - t

    print()
    rows = []
    for p, h in reg.items():
        best = int(np.argmax(h["test_acc"]))
        rows.append([p, f"{h['train_acc'][-1]:.3f}", f"{h['test_acc'][-1]:.3f}",
                     f"{max(h['test_acc']):.3f} (epoch {best + 1})", f"{h['test_loss'][-1]:.3f}"])
    print_table("1. Dropout as regularisation (digits)", ["p", "final train acc", "final test acc", "best test acc", "final test loss"], rows)

    rows = [[f"{s:.3g}", f"{e0:.3f}", f"{e1:.3f}"] for s, e0, e1 in zip(cfg.deep_stds, deep[False], deep[True])]
    print_table(f"2. Going deeper: test error, depth {cfg.deep_depth} width {cfg.deep_width}",
                ["init std", "without BatchNorm", "with BatchNorm"], rows)

    c = ens["correct"]
    rows = [["weight scaling (eval)", f"{ens['scaled_acc']:.3f}"]]
    rows += [[f"MC, T = {t_}", f"{np.mean(a):.3f}"] for t_, a in zip(ens["samples"], ens["mc_acc"])]
    print_table("3. The ensemble view: test accuracy", ["predictor", "accuracy"], rows)
    print_table(
        "3. MC uncertainty (mean over the test set)",
        ["", "predictive entropy", "mutual information (BALD)"],
        [["correct", f"{ens['entropy'][c].mean():.3f}", f"{ens['bald'][c].mean():.4f}"],
         ["misclassified", f"{ens['entropy'][~c].mean():.3f}" if (~c).any() else "-",
          f"{ens['bald'][~c].mean():.4f}" if (~c).any() else "-"]],
    )
    t = time.perf_counter()
    bench_dropout.headline(quick=cfg.bench_quick)
    timings["speed"] = time.perf_counter() - t

    pngs = [out / n for n in ("regularisation.png", "going_deeper.png", "ensemble.png")]
    total = time.perf_counter() - t0
    print("Plots:")
    for pth in pngs:
        print(f"  {pth}")
    print("Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + f"; total {total:.1f}s")
    return {"regularisation": reg, "going_deeper": deep, "ensemble": ens, "plots": pngs, "seconds": total}
