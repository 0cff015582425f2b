"""The command line (``python -m dropcore`` and the ``dropcore`` script): version, usage
name, bad arguments (one line, exit 2, nothing created), the quick bench tables, and the
core working without the optional extras."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dropcore
from dropcore.__main__ import SEED_MAX, _seed


def run_cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "dropcore", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def console_script():
    """The ``dropcore`` script pip installed beside this interpreter."""
    path = Path(sys.executable).parent / "dropcore"
    if not path.exists():
        path = shutil.which("dropcore")
    assert path, "the dropcore console script is not installed"
    return str(path)


def test_version_from_module_and_script():
    for cmd in ([sys.executable, "-m", "dropcore", "--version"], [console_script(), "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"dropcore {dropcore.__version__}"
    assert dropcore.__version__.count(".") == 2


def test_usage_names_the_program_that_was_typed():
    script = subprocess.run([console_script(), "--help"], capture_output=True, text=True, timeout=60)
    assert script.stdout.startswith("usage: dropcore [-h]"), script.stdout[:200]
    module = run_cli("--help")
    assert module.stdout.startswith("usage: python -m dropcore [-h]"), module.stdout[:200]


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "seed must be an integer in [0, 2^64-1], but got -1"),
    (["--seed", str(2**64)], f"but got {2**64}"),
    (["--seed", str(10**23)], f"but got {10**23}"),
    (["--seed", "1.5"], "but got '1.5'"),
])
def test_bad_seed_is_one_line_exit_2_and_creates_nothing(tmp_path, args, message):
    proc = run_cli("demo", "--out", "new-folder", *args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_seed_range_ends_are_accepted():
    assert _seed("0") == 0 and _seed(str(2**64 - 1)) == SEED_MAX == 2**64 - 1


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    for out in (f, f / "sub"):
        proc = run_cli("demo", "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and str(f) in proc.stderr
        assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"] and f.read_text() == "keep me"


def test_unwritable_out_is_refused_and_leaves_no_folders(tmp_path):
    # /proc refuses new folders even to root; a read-only folder covers other users.
    targets = ["/proc/dropcore-no-such/a/b"]
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        targets.append(str(ro / "new" / "deeper"))
    for out in targets:
        proc = run_cli("demo", "--out", out, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip()
        assert len(line.splitlines()) == 1 and "cannot create the folder or write in it" in line, line
    assert not Path("/proc/dropcore-no-such").exists()
    if os.geteuid() != 0:
        assert list((tmp_path / "ro").iterdir()) == []


def test_unknown_command_is_one_line_exit_2():
    proc = run_cli("nope")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "invalid choice: 'nope'" in proc.stderr


def test_bench_quick_dropout_table():
    proc = run_cli("bench", "--quick", "--only", "dropout")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "memcpy Melem/s" in proc.stdout and "1e+07" in proc.stdout
    assert "1e+04-element call:" in proc.stdout and "Philox words alone" in proc.stdout


def test_bench_quick_mc_table():
    proc = run_cli("bench", "--quick", "--only", "mc")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MC dropout, 30 samples x batch 1024" in proc.stdout
    assert "dropcore mc.predict" in proc.stdout and "dropcore per-sample loop" in proc.stdout


# Importing any of these fails in the child below, as if the extras were not installed.
EXTRAS = ("matplotlib", "tqdm", "threadpoolctl", "sklearn", "scipy", "dask", "distributed", "zarr", "hypothesis", "pytest")
BLOCK_EXTRAS = f"""
import sys
class _NoExtras:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _NoExtras())
"""


def run_without_extras(code, cwd):
    return subprocess.run([sys.executable, "-c", BLOCK_EXTRAS + code], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_core_works_without_the_extras(tmp_path):
    code = """
import importlib, pkgutil
import numpy as np
import dropcore
from dropcore import nn, optim, data, mc
import dropcore.nn.functional as F
for m in pkgutil.walk_packages(dropcore.__path__, "dropcore."):
    try:
        importlib.import_module(m.name)
    except ImportError as e:
        # an optional integration may refuse to import, but must name its extra
        assert m.name.startswith("dropcore.dask") and "dask" in str(e), (m.name, e)
xtr, ytr, xte, yte = data.load_digits(seed=0)
dropcore.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
opt = optim.SGD(model.parameters(), lr=0.1)
loss = nn.CrossEntropyLoss()(model(dropcore.tensor(xtr[:64])), ytr[:64])
loss.backward()
opt.step()
r = mc.predict(model, xte[:16], samples=4, generator=dropcore.Generator(0))
y = F.dropout(np.ones(1000, np.float32), 0.5, generator=dropcore.Generator(1))
assert r.mean.shape == (16, 10) and set(np.unique(y)) <= {0.0, 2.0}
print("core ok", sorted(m for m in sys.modules if m.split(".")[0] in %r))
""" % (EXTRAS,)
    proc = run_without_extras(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "core ok []" in proc.stdout


def test_demo_without_its_extra_names_it_and_creates_nothing(tmp_path):
    proc = run_without_extras("from dropcore.__main__ import main; sys.exit(main(['demo', '--out', 'd']))", tmp_path)
    assert proc.returncode == 1
    assert 'pip install "dropcore[demo]"' in proc.stderr and "matplotlib" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
