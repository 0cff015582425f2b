"""The command line: the demo's quick version and a quick bench run end to end."""

import subprocess
import sys


def test_demo_quick_writes_plots_and_summary(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "dropcore", "demo", "--quick", "--out", str(out), "--seed", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("regularisation.png", "going_deeper.png", "ensemble.png"):
        png = out / name
        assert png.exists() and png.stat().st_size > 10_000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = proc.stdout
    for heading in ("1. Dropout as regularisation", "2. Going deeper", "3. The ensemble view", "Dropout speed"):
        assert heading in text
    assert str(out / "ensemble.png") in text


def test_bench_quick_dropout_table():
    proc = subprocess.run(
        [sys.executable, "-m", "dropcore", "bench", "--quick", "--only", "dropout"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "memcpy Melem/s" in proc.stdout and "1e+07" in proc.stdout


def test_unknown_command_fails():
    proc = subprocess.run([sys.executable, "-m", "dropcore", "nope"], capture_output=True, text=True)
    assert proc.returncode != 0


def test_bench_quick_mc_table():
    proc = subprocess.run(
        [sys.executable, "-m", "dropcore", "bench", "--quick", "--only", "mc"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MC dropout, 30 samples x batch 1024" in proc.stdout
    assert "dropcore mc.predict" in proc.stdout and "dropcore per-sample loop" in proc.stdout
