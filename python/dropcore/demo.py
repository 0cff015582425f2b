"""``python -m dropcore demo``: the lecture notes' experiments, run with dropcore.

1. Dropout as regularisation: an MLP on a small part of the digits with p in
   {0, 0.2, 0.5, 0.8}; training (in eval mode) and test curves. Lesson: dropout
   narrows the gap between training and test loss.
2. Going deeper (Fleuret, EE-559 §6): the notes' depth-16, width-32 MLP on the 2-D
   disc problem; test error against the initial weights' standard deviation, with and
   without BatchNorm. Lesson: with BatchNorm it trains across the scales.
3. The ensemble view: weight scaling (plain eval) against MC averaging over T dropout
   samples. Lessons: the MC prediction approaches weight scaling as T grows, and its
   uncertainty is higher on the digits it gets wrong.
4. Speed: element dropout against memcpy and NumPy.

Every configuration runs over several seeds (5, or 3 with ``--quick``); plots show the
mean with the min-max band, and ``summary.md`` (next to the PNGs) says for each lesson
whether this run shows it, from the spread over seeds, and says so plainly when it does
not. Everything runs on data that ships with the package (no download).
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data, mc, nn, optim
from .random import Generator, manual_seed
from .tensor import Tensor, no_grad

__all__ = ["run", "DemoConfig"]

_U64 = 2**64


@dataclass
class DemoConfig:
    """Sizes of the experiments; ``quick()`` keeps the lessons with fewer seeds and epochs."""

    seeds: int = 5
    # 1. regularisation: 64-256-256-10 MLP, Adam, on 20% of the digits
    reg_epochs: int = 60
    reg_hidden: int = 256
    reg_train_fraction: float = 0.2
    reg_lr: float = 1e-3
    ps: tuple[float, ...] = (0.0, 0.2, 0.5, 0.8)
    # 2. going deeper: the notes' create_model on the disc, plain SGD as in the notes
    deep_depth: int = 16
    deep_width: int = 32
    deep_stds: tuple[float, ...] = (0.001, 0.01, 0.1, 0.2, 1.0, 10.0)
    deep_steps: int = 500
    deep_train: int = 1000
    deep_lr: float = 0.1
    # 3. ensemble: 64-256-256-10 MLP with dropout 0.5, Adam, on half the digits
    ens_epochs: int = 30
    ens_lr: float = 1e-3
    ens_samples: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)
    bench_quick: bool = False

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(seeds=3, reg_epochs=30, deep_stds=(0.001, 0.2, 10.0), ens_epochs=15,
                   ens_samples=(1, 3, 10, 30), bench_quick=True)


# ----------------------------------------------------------------------------- training
def _progress(iterable, desc: str, total: int | None = None):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def _evaluate(model, x: np.ndarray, y: np.ndarray, loss_fn) -> tuple[float, float]:
    """Loss and accuracy in eval mode (dropout off, BatchNorm on running statistics)."""
    model.eval()
    with no_grad(), np.errstate(all="ignore"):
        logits = model(Tensor(x))
        loss = float(loss_fn(logits, y).item())
        acc = float((np.nan_to_num(logits._data).argmax(1) == y).mean())
    return loss, acc


def _fit(model, opt, xtr, ytr, xte, yte, epochs, batch_size, seed, record=True):
    """Minibatch training; per-epoch train/test loss and accuracy, both in eval mode."""
    loss_fn = nn.CrossEntropyLoss()
    hist = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    for epoch in range(epochs):
        model.train()
        for xb, yb in data.minibatches(xtr, ytr, batch_size, seed=seed * 1_000 + epoch):
            opt.zero_grad()
            loss_fn(model(Tensor(xb)), yb).backward()
            opt.step()
        if record or epoch == epochs - 1:
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


def _seeds(cfg: DemoConfig, seed: int) -> list[int]:
    return [(seed + k) % _U64 for k in range(cfg.seeds)]


# ----------------------------------------------------------------------------- experiments
def regularisation(cfg: DemoConfig, seed: int) -> dict:
    """Experiment 1: curves on the digits for each dropout rate and seed.

    Returns ``{p: {"train_loss": (seeds, epochs) array, ...}}``.
    """
    runs = [(p, s) for s in _seeds(cfg, seed) for p in cfg.ps]
    out = {p: {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc")} for p in cfg.ps}
    for p, s in _progress(runs, "1/3 regularisation", total=len(runs)):
        xtr, ytr, xte, yte = data.load_digits(test_fraction=1 - cfg.reg_train_fraction, seed=s)
        manual_seed(s)
        model = _mlp([64, cfg.reg_hidden, cfg.reg_hidden, 10], p)
        opt = optim.Adam(model.parameters(), lr=cfg.reg_lr)
        hist = _fit(model, opt, xtr, ytr, xte, yte, cfg.reg_epochs, 32, s)
        for k, v in hist.items():
            out[p][k].append(v)
    return {p: {k: np.array(v) for k, v in h.items()} for p, h in out.items()}


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


def going_deeper(cfg: DemoConfig, seed: int) -> dict:
    """Experiment 2: test error against the init std, with and without BatchNorm.

    Returns ``{False: (seeds, stds) array, True: ...}`` of test errors.
    """
    loss_fn = nn.CrossEntropyLoss()
    seeds = _seeds(cfg, seed)
    errors = {bn: np.zeros((len(seeds), len(cfg.deep_stds))) for bn in (False, True)}
    runs = [(i, s, bn, j, std) for i, s in enumerate(seeds) for bn in (False, True) for j, std in enumerate(cfg.deep_stds)]
    for i, s, bn, j, std in _progress(runs, "2/3 going deeper", total=len(runs)):
        xtr, ytr = data.make_disc(cfg.deep_train, seed=s)
        xte, yte = data.make_disc(1000, seed=(s + 1) % _U64)
        manual_seed(s)
        net = _deep_net(cfg.deep_depth, cfg.deep_width, std, bn)
        opt = optim.SGD(net.parameters(), lr=cfg.deep_lr)
        rng = np.random.default_rng(s)
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
        errors[bn][i, j] = 1.0 - _evaluate(net, xte, yte, loss_fn)[1]
    return errors


def ensemble(cfg: DemoConfig, seed: int) -> dict:
    """Experiment 3: weight scaling vs MC averaging, and MC uncertainty, per seed."""
    seeds = _seeds(cfg, seed)
    ts = list(cfg.ens_samples)
    res = {"samples": ts, "scaled_acc": [], "mc_acc": [], "agreement": [], "entropy_right": [],
           "entropy_wrong": [], "bald_right": [], "bald_wrong": []}
    for s in _progress(seeds, "3/3 ensemble", total=len(seeds)):
        xtr, ytr, xte, yte = data.load_digits(test_fraction=0.5, seed=s)
        manual_seed(s)
        model = _mlp([64, 256, 256, 10], 0.5)
        opt = optim.Adam(model.parameters(), lr=cfg.ens_lr)
        _fit(model, opt, xtr, ytr, xte, yte, cfg.ens_epochs, 32, s, record=False)
        model.eval()
        with no_grad():
            scaled = model(Tensor(xte))._data.argmax(1)
        res["scaled_acc"].append(float((scaled == yte).mean()))
        accs, agree = [], []
        for k, t in enumerate(ts):
            r = mc.predict(model, xte, t, generator=Generator((s + k) % _U64))
            accs.append(float((r.prediction == yte).mean()))
            agree.append(float((r.prediction == scaled).mean()))
        res["mc_acc"].append(accs)
        res["agreement"].append(agree)
        right = r.prediction == yte  # r: the largest T
        res["entropy_right"].append(r.entropy[right])
        res["entropy_wrong"].append(r.entropy[~right])
        res["bald_right"].append(r.mutual_information[right])
        res["bald_wrong"].append(r.mutual_information[~right])
    for k in ("scaled_acc", "mc_acc", "agreement"):
        res[k] = np.array(res[k])
    return res


# ----------------------------------------------------------------------------- lessons
def _pm(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def _tail_mean(a: np.ndarray) -> np.ndarray:
    """Per seed, the mean over the last 10% of epochs (at least one): the final value,
    less sensitive to the last epoch's noise."""
    k = max(1, a.shape[1] // 10)
    return a[:, -k:].mean(1)


def _verdict(holds: bool, lesson: str, evidence: str) -> str:
    if holds:
        return f"**{lesson}: shown.** {evidence}"
    return f"**{lesson}: NOT shown by this run.** {evidence}"


def lessons_regularisation(reg: dict) -> tuple[list[str], list[list[str]], bool]:
    gaps = {p: _tail_mean(h["test_loss"]) - _tail_mean(h["train_loss"]) for p, h in reg.items()}
    rows = []
    for p, h in reg.items():
        rows.append([f"{p}", _pm(_tail_mean(h["train_loss"])), _pm(_tail_mean(h["test_loss"])), _pm(gaps[p]),
                     _pm(_tail_mean(h["train_acc"])), _pm(_tail_mean(h["test_acc"])), _pm(h["test_acc"].max(1))])
    base = gaps[0.0] if 0.0 in gaps else None
    lines = []
    if base is None:
        return ["(no p = 0 run to compare with)"], rows, False
    narrower = [p for p in gaps if p > 0 and np.all(gaps[p] < base)]
    n = len(base)
    holds = 0.5 in narrower or (len(narrower) > 0 and all(p in narrower for p in gaps if 0 < p <= 0.5))
    detail = "; ".join(f"p = {p}: {_pm(g)} ({int(np.sum(g < base))}/{n} seeds below p = 0)" for p, g in gaps.items() if p > 0)
    lines.append(_verdict(holds, "Dropout narrows the train/test gap",
                          f"Final test loss minus training loss (eval mode), mean ± sd over {n} seeds: "
                          f"p = 0: {_pm(base)}; {detail}."))
    return lines, rows, holds


def lessons_deeper(cfg: DemoConfig, deep: dict, trained: float = 0.15) -> tuple[list[str], list[list[str]], bool]:
    rows = []
    for j, std in enumerate(cfg.deep_stds):
        rows.append([f"{std:g}", _pm(deep[False][:, j]), _pm(deep[True][:, j])])
    bn_ok = deep[True] < trained
    plain_ok = deep[False] < trained
    all_bn = bool(bn_ok.all())
    plain_scales = [f"{s:g}" for j, s in enumerate(cfg.deep_stds) if plain_ok[:, j].all()]
    bn_fail = [f"{s:g} ({int((~bn_ok[:, j]).sum())}/{len(bn_ok)} seeds)" for j, s in enumerate(cfg.deep_stds) if not bn_ok[:, j].all()]
    holds = all_bn and not plain_ok.all()
    evidence = (f"'Trains' = test error below {trained} (chance is 0.5). With BatchNorm: "
                + ("every scale trains in every seed" if all_bn else "fails at " + ", ".join(bn_fail))
                + f" (worst error {deep[True].max():.3f}). Without: trains in every seed only at std "
                + (", ".join(plain_scales) if plain_scales else "none of the scales") + ".")
    return [_verdict(holds, "BatchNorm makes depth 16 trainable across init scales", evidence)], rows, holds


def lessons_ensemble(ens: dict) -> tuple[list[str], list[list[str]], list[list[str]], bool]:
    ts, agree, accs, scaled = ens["samples"], ens["agreement"], ens["mc_acc"], ens["scaled_acc"]
    n = len(scaled)
    rows = [["weight scaling (eval mode)", _pm(scaled), "1 (itself)"]]
    rows += [[f"MC, T = {t}", _pm(accs[:, k]), _pm(agree[:, k])] for k, t in enumerate(ts)]
    rising = agree[:, -1] > agree[:, 0]
    gap_first = np.abs(accs[:, 0] - scaled)
    gap_last = np.abs(accs[:, -1] - scaled)
    approaches = bool(rising.all())
    lines = [_verdict(approaches, "MC averaging approaches weight scaling as T grows",
                      f"Agreement with the weight-scaled prediction rises from {_pm(agree[:, 0])} at T = {ts[0]} "
                      f"to {_pm(agree[:, -1])} at T = {ts[-1]} ({int(rising.sum())}/{n} seeds); the accuracy "
                      f"difference |MC - weight scaling| goes from {_pm(gap_first)} to {_pm(gap_last)}.")]
    seeds_with_errors = [i for i in range(n) if len(ens["entropy_wrong"][i])]
    ent_r = np.array([ens["entropy_right"][i].mean() for i in seeds_with_errors])
    ent_w = np.array([ens["entropy_wrong"][i].mean() for i in seeds_with_errors])
    bald_r = np.array([ens["bald_right"][i].mean() for i in seeds_with_errors])
    bald_w = np.array([ens["bald_wrong"][i].mean() for i in seeds_with_errors])
    higher = bool(seeds_with_errors) and bool(np.all(ent_w > ent_r))
    lines.append(_verdict(higher, "MC uncertainty is higher on errors",
                          f"Mean predictive entropy at T = {ts[-1]}, misclassified vs correct: {_pm(ent_w)} vs "
                          f"{_pm(ent_r)} nats ({int(np.sum(ent_w > ent_r))}/{len(seeds_with_errors)} seeds); "
                          f"BALD {_pm(bald_w)} vs {_pm(bald_r)}."))
    unc_rows = [["correct", _pm(ent_r), _pm(bald_r)], ["misclassified", _pm(ent_w), _pm(bald_w)]]
    return lines, rows, unc_rows, approaches and higher


# ----------------------------------------------------------------------------- plots
def _band(ax, x, runs, color, ls="-", label=None, marker=None):
    runs = np.asarray(runs)
    ax.plot(x, runs.mean(0), ls, color=color, label=label, marker=marker, lw=1.6)
    ax.fill_between(x, runs.min(0), runs.max(0), color=color, alpha=0.18, lw=0)


def _plot_regularisation(reg: dict, n_seeds: int, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = {p: f"C{i}" for i, p in enumerate(reg)}
    for p, h in reg.items():
        epochs = np.arange(1, h["train_loss"].shape[1] + 1)
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            _band(ax, epochs, h[f"train_{key}"], colors[p], "--")
            _band(ax, epochs, h[f"test_{key}"], colors[p], "-")
    handles = [Line2D([], [], color=colors[p], lw=2, label=f"p = {p}") for p in reg]
    handles += [Line2D([], [], color="k", ls="-", label="test"), Line2D([], [], color="k", ls="--", label="train (eval mode)")]
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    ax_loss.legend(handles=handles, fontsize=8, loc="lower left")
    ax_acc.legend(handles=handles, fontsize=8, loc="lower right")
    fig.suptitle(f"Dropout as regularisation: MLP on 20% of the digits (mean and min-max band over {n_seeds} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_deeper(cfg: DemoConfig, errors: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    stds = np.array(cfg.deep_stds)
    for bn, color, marker, label in ((False, "C3", "o", "without BatchNorm"), (True, "C0", "s", "with BatchNorm")):
        e = errors[bn]
        mean = e.mean(0)
        ax.errorbar(stds, mean, yerr=[mean - e.min(0), e.max(0) - mean], fmt=marker + "-", color=color,
                    capsize=3, label=f"{label} (mean, min-max)")
    ax.axhline(0.5, color="gray", ls=":", lw=1, label="chance")
    ax.set(xscale="log", xlabel="standard deviation of the initial weights", ylabel="test error",
           title=f"Going deeper: depth {cfg.deep_depth}, width {cfg.deep_width}, disc problem, "
                 f"{len(errors[True])} seeds", ylim=(0, 0.75))
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ensemble(ens: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_agree, ax_unc) = plt.subplots(1, 3, figsize=(15, 4.6))
    ts = np.array(ens["samples"])
    scaled = ens["scaled_acc"]
    _band(ax_acc, ts, ens["mc_acc"], "C0", "-", label="MC averaging over T samples", marker="o")
    ax_acc.axhline(scaled.mean(), color="C1", ls="--", lw=1.6, label="weight scaling (eval mode)")
    ax_acc.axhspan(scaled.min(), scaled.max(), color="C1", alpha=0.15, lw=0)
    lo = min(ens["mc_acc"].min(), scaled.min())
    hi = max(ens["mc_acc"].max(), scaled.max())
    pad = 0.08 * (hi - lo) + 0.002
    ax_acc.set(xscale="log", xlabel="dropout samples T", ylabel="test accuracy", ylim=(lo - pad, hi + pad),
               title="Test accuracy (mean, min-max band)")
    ax_acc.legend(fontsize=9, loc="lower right")
    _band(ax_agree, ts, ens["agreement"], "C2", "-", label="MC vs weight scaling", marker="o")
    ax_agree.set(xscale="log", xlabel="dropout samples T", ylabel="fraction of test digits",
                 title="Same prediction as weight scaling")
    ax_agree.legend(fontsize=9, loc="lower right")
    right = np.concatenate(ens["entropy_right"])
    wrong = np.concatenate(ens["entropy_wrong"])
    bins = np.linspace(0, max(float(np.concatenate([right, wrong]).max()), 1e-3), 30)
    ax_unc.hist(right, bins=bins, alpha=0.6, density=True, color="C0", label=f"correct ({len(right)})")
    ax_unc.hist(wrong, bins=bins, alpha=0.6, density=True, color="C3", label=f"misclassified ({len(wrong)})")
    ax_unc.set(xlabel="predictive entropy (nats)", ylabel="density",
               title=f"MC uncertainty at T = {ts[-1]}, all seeds")
    ax_unc.legend(fontsize=9)
    fig.suptitle(f"The ensemble view of dropout (digits, p = 0.5, {len(scaled)} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- summary
def _table(title: str, headers, rows) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([f"### {title}", "", line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows), ""])


def machine_line() -> str:
    """CPU model, cores, dropcore's SIMD path and threads, library versions."""
    from . import __version__, get_num_threads
    from ._core import simd_isa

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores; dropcore {__version__} ({simd_isa()}, {get_num_threads()} threads), "
            f"NumPy {np.__version__}, Python {platform.python_version()}")


# ----------------------------------------------------------------------------- main
def run(quick: bool = False, out: str | Path = "dropcore-demo", seed: int = 0) -> dict:
    """Run every experiment over several seeds; write the plots and ``summary.md`` into
    ``out`` and print the summary. Returns the results and the verdicts."""
    import matplotlib
    from threadpoolctl import threadpool_limits

    matplotlib.use("Agg")
    from .benchmarks import dropout as bench_dropout

    cfg = DemoConfig.quick() if quick else DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    timings = {}
    seeds = _seeds(cfg, seed)
    print(f"dropcore demo{' (quick)' if quick else ''}: the lecture notes' experiments over {cfg.seeds} seeds "
          f"({seeds[0]}..{seeds[-1]})", flush=True)

    def timed(name, fn):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        timings[name] = (time.perf_counter() - t, time.process_time() - c)
        return result

    # The demo's matrices are small (at most 1,438 x 256): one BLAS thread is faster than
    # several, and much faster when other jobs share the cores (threads wait for each other).
    with threadpool_limits(limits=1, user_api="blas"):
        reg = timed("regularisation", lambda: regularisation(cfg, seed))
        deep = timed("going deeper", lambda: going_deeper(cfg, seed))
        ens = timed("ensemble", lambda: ensemble(cfg, seed))
    _plot_regularisation(reg, cfg.seeds, out / "regularisation.png")
    _plot_deeper(cfg, deep, out / "going_deeper.png")
    _plot_ensemble(ens, out / "ensemble.png")

    reg_lines, reg_rows, reg_ok = lessons_regularisation(reg)
    deep_lines, deep_rows, deep_ok = lessons_deeper(cfg, deep)
    ens_lines, ens_rows, unc_rows, ens_ok = lessons_ensemble(ens)
    speed = timed("speed", lambda: bench_dropout.headline(quick=cfg.bench_quick))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    timings_line = ", ".join(f"{k} {w:.0f} s" for k, (w, _) in timings.items())

    md = [f"# dropcore demo{' (--quick)' if quick else ''}", "",
          f"Machine: {machine_line()}.", "",
          f"Seeds {', '.join(map(str, seeds))}; every figure is mean ± sd over them (plots: mean and min-max band). "
          "BLAS limited to one thread for the experiments (small matrices).", "",
          "## Lessons", "", *(f"- {line}" for line in reg_lines + deep_lines + ens_lines), "",
          "## 1. Dropout as regularisation", "",
          f"MLP 64-{cfg.reg_hidden}-{cfg.reg_hidden}-10 with dropout after each hidden ReLU, Adam (lr {cfg.reg_lr}), "
          f"batch 32, {cfg.reg_epochs} epochs on {cfg.reg_train_fraction:.0%} of the digits; losses and accuracies "
          "in eval mode, averaged over the last 10% of epochs (best test accuracy: over all epochs).", "",
          _table("1. Dropout as regularisation (digits)",
                 ["p", "train loss", "test loss", "gap (test - train)", "train acc", "test acc", "best test acc"], reg_rows),
          "## 2. Going deeper", "",
          f"The notes' create_model (depth {cfg.deep_depth}, width {cfg.deep_width}) on the disc problem, "
          f"{cfg.deep_train} training points, {cfg.deep_steps} steps of plain SGD (lr {cfg.deep_lr}, batch 100), "
          "weights ~ N(0, std), biases 0; test error on 1,000 new points.", "",
          _table(f"2. Going deeper: test error, depth {cfg.deep_depth} width {cfg.deep_width}",
                 ["init std", "without BatchNorm", "with BatchNorm"], deep_rows),
          "## 3. The ensemble view", "",
          f"MLP 64-256-256-10 with dropout 0.5, Adam (lr {cfg.ens_lr}), batch 32, {cfg.ens_epochs} epochs on half "
          "the digits; MC averaging with dropcore.mc.predict.", "",
          _table("3. The ensemble view: test accuracy", ["predictor", "test accuracy", "same prediction as weight scaling"],
                 ens_rows),
          _table(f"3. MC uncertainty at T = {ens['samples'][-1]} (mean over the test digits)",
                 ["", "predictive entropy (nats)", "mutual information (BALD)"], unc_rows),
          "## 4. Speed", "", *speed, "",
          "## Time", "",
          f"Wall {wall:.0f} s ({timings_line}); CPU time of this process {cpu:.0f} s. "
          f"On a machine shared with other jobs the wall time is longer than the CPU time.", ""]
    text = "\n".join(md)
    (out / "summary.md").write_text(text)
    print()
    print(text)
    pngs = [out / n for n in ("regularisation.png", "going_deeper.png", "ensemble.png")]
    print("Wrote:")
    for pth in [*pngs, out / "summary.md"]:
        print(f"  {pth}")
    print(f"Time: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return {"regularisation": reg, "going_deeper": deep, "ensemble": ens, "plots": pngs,
            "summary": out / "summary.md", "lessons": {"regularisation": reg_ok, "going_deeper": deep_ok,
                                                       "ensemble": ens_ok},
            "seconds": wall, "cpu_seconds": cpu}
