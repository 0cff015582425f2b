"""The demo: its verdicts say plainly whether a run shows each lesson (checked on made-up
results both ways), and the quick run end to end writes the plots and summary.md and
shows every lesson over its 3 seeds."""

import re
import subprocess
import sys

import numpy as np

from dropcore import demo


def curves(final_train, final_test, epochs=10):
    """(seeds, epochs) curves that end at the given per-seed values."""
    ramp = np.linspace(2.0, 1.0, epochs)
    return np.array([ramp * v for v in final_train]), np.array([ramp * v for v in final_test])


def reg_results(gap0, gap5):
    out = {}
    for p, gaps in ((0.0, gap0), (0.5, gap5)):
        train, test = curves([0.01] * len(gaps), [0.01 + g for g in gaps])
        out[p] = {"train_loss": train, "test_loss": test, "train_acc": np.full_like(train, 0.99),
                  "test_acc": np.full_like(train, 0.95)}
    return out


def test_regularisation_verdict_both_ways():
    lines, rows, ok = demo.lessons_regularisation(reg_results([0.30, 0.25, 0.35], [0.05, 0.08, 0.06]))
    assert ok and "narrows the train/test gap: shown" in lines[0] and "3/3 seeds below p = 0" in lines[0]
    assert [r[0] for r in rows] == ["0.0", "0.5"] and rows[0][3].startswith("0.300")
    # one seed where dropout's gap is wider: not shown, and said so
    lines, _, ok = demo.lessons_regularisation(reg_results([0.30, 0.25, 0.35], [0.05, 0.40, 0.06]))
    assert not ok and "NOT shown by this run" in lines[0] and "2/3 seeds below p = 0" in lines[0]


def test_deeper_verdict_both_ways():
    cfg = demo.DemoConfig(deep_stds=(0.001, 0.3, 10.0))
    good = {False: np.array([[0.5, 0.03, 0.5]] * 3), True: np.array([[0.04, 0.03, 0.06]] * 3)}
    lines, rows, ok = demo.lessons_deeper(cfg, good)
    assert ok and "trainable across init scales: shown" in lines[0] and "only at std 0.3." in lines[0]
    assert rows[0] == ["0.001", "0.500 ± 0.000", "0.040 ± 0.000"]
    bad = {False: good[False], True: np.array([[0.04, 0.03, 0.06], [0.48, 0.03, 0.06], [0.04, 0.03, 0.06]])}
    lines, _, ok = demo.lessons_deeper(cfg, bad)
    assert not ok and "NOT shown" in lines[0] and "fails at 0.001 (1/3 seeds)" in lines[0]


def ens_results(agree_last, entropy_wrong):
    rng = np.random.default_rng(0)
    n = len(agree_last)
    return {"samples": [1, 10, 100], "scaled_acc": np.full(n, 0.96),
            "mc_acc": np.tile([0.93, 0.955, 0.96], (n, 1)),
            "agreement": np.array([[0.95, 0.98, a] for a in agree_last]),
            "entropy_right": [rng.uniform(0, 0.3, 50) for _ in range(n)],
            "entropy_wrong": [np.full(5, e) for e in entropy_wrong],
            "bald_right": [np.full(50, 0.05) for _ in range(n)], "bald_wrong": [np.full(5, 0.3) for _ in range(n)]}


def test_ensemble_verdicts_both_ways():
    lines, rows, unc, ok = demo.lessons_ensemble(ens_results([0.99, 0.995, 0.99], [1.0, 0.9, 1.1]))
    assert ok and len(lines) == 2 and all(": shown." in line for line in lines)
    assert rows[0][0] == "weight scaling (eval mode)" and rows[-1][0] == "MC, T = 100"
    lines, _, _, ok = demo.lessons_ensemble(ens_results([0.99, 0.94, 0.99], [1.0, 0.9, 0.01]))
    assert not ok
    assert "approaches weight scaling as T grows: NOT shown" in lines[0] and "(2/3 seeds)" in lines[0]
    assert "higher on errors: NOT shown" in lines[1] and "(2/3 seeds)" in lines[1]


def test_quick_demo_writes_plots_summary_and_shows_the_lessons(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "dropcore", "demo", "--quick", "--out", str(out), "--seed", "1"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("regularisation.png", "going_deeper.png", "ensemble.png"):
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    summary = (out / "summary.md").read_text()
    assert summary in proc.stdout  # the same text is printed
    import dropcore._core as core

    assert re.search(r"^Machine: .+ cores; dropcore .+ \(" + core.simd_isa() + r", \d+ threads\)", summary, re.M)
    assert "Seeds 1, 2, 3;" in summary
    for heading in ("### 1. Dropout as regularisation", "### 2. Going deeper", "### 3. The ensemble view",
                    "### 3. MC uncertainty", "Dropout speed"):
        assert heading in summary
    verdicts = re.findall(r"^- \*\*(.+?): (shown|NOT shown by this run)\.\*\*", summary, re.M)
    assert len(verdicts) == 4, verdicts
    assert all(v == "shown" for _, v in verdicts), summary
    assert re.search(r"^Wall \d+ s \(regularisation \d+ s, going deeper \d+ s, ensemble \d+ s, speed \d+ s\); "
                     r"CPU time of this process \d+ s", summary, re.M)
    assert re.search(r"^Time: [\d.]+ s wall, [\d.]+ s CPU$", proc.stdout, re.M)
