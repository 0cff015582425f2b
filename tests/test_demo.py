"""The demo end to end (quick version): plots and summary written, lessons reported."""

import subprocess
import sys


def test_demo_quick_writes_plots_and_summary(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "dropcore", "demo", "--quick", "--out", str(out), "--seed", "1"],
        capture_output=True, text=True, timeout=600,
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
