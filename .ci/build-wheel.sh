#!/usr/bin/env bash
# Build what a package index accepts: a manylinux2014 (manylinux_2_17) x86-64 wheel and an
# sdist, into dist/. Then check them: auditwheel must accept the wheel's tag, the wheel must
# install and run in a fresh venv without Rust, and the sdist must build a wheel.
#
# Needs Python >= 3.11, cargo and network access to PyPI (maturin, ziglang, auditwheel).
# zig (from PyPI's `ziglang`) is the linker: it links against glibc 2.17's symbols, so the
# wheel does not depend on the build machine's newer glibc.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
tools=target/build-tools            # a venv for the build tools, kept between runs
[ -x "$tools/bin/python" ] || "$PY" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --upgrade "maturin>=1.5,<2" ziglang auditwheel
export PATH="$PWD/$tools/bin:$PATH"

rm -rf dist
maturin build --release --zig --compatibility manylinux2014 --out dist
maturin sdist --out dist
wheel=$(ls dist/*.whl)
sdist=$(ls dist/*.tar.gz)

echo "== auditwheel show $wheel"
auditwheel show "$wheel" | tee target/auditwheel.txt
grep -q "manylinux_2_17_x86_64" target/auditwheel.txt || { echo "auditwheel: not manylinux_2_17" >&2; exit 1; }

echo "== the wheel in a fresh venv (no Rust involved)"
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
"$PY" -m venv "$check/venv"
"$check/venv/bin/pip" install --quiet "$wheel"
(cd "$check" && "$check/venv/bin/dropcore" --version && "$check/venv/bin/python" -c '
import numpy as np, dropcore, dropcore._core as c
import dropcore.nn.functional as F
y = F.dropout(np.ones(10**5, np.float32), 0.5, generator=dropcore.Generator(0))
assert set(np.unique(y)) == {0.0, 2.0}
print("wheel ok:", dropcore.__version__, c.simd_isa())')

echo "== the sdist builds a wheel"
"$tools/bin/python" -m pip wheel --quiet --no-deps "$sdist" -w "$check/from-sdist"
ls "$check/from-sdist"
ls -l dist
