#!/usr/bin/env bash
# Randomness quality of dropcore's random streams, measured with dieharder.
# Not part of CI (a full run reads tens of GB and takes hours); run it by hand:
#
#   apt-get install dieharder          # Debian/Ubuntu; brew install dieharder on macOS
#   bench/randomness.sh                # quick: 14 "Good" tests on each stream (~30 min)
#   bench/randomness.sh --full         # dieharder -a on each stream (hours)
#   bench/randomness.sh --stream masks --seed 7
#
# Two streams go through dieharder's raw stdin generator (-g 200):
#   words  the raw Philox4x32-10 word stream of one seed (_core.philox_words),
#   masks  real keep masks: F.dropout(ones, p=0.5) through the public API with a
#          dropcore.Generator, one bit per element (kept = 1), packed 8 per byte.
#          At p = 0.5 a fair mask is a fair bit stream, so any bias or correlation
#          in the mask rule (contract v2: 16-bit lanes, tie words) shows up here.
# A pass: no test FAILED. With ~1% of p-values flagged WEAK by chance (dieharder
# marks p < 0.005 or p > 0.995), a few WEAK lines in a long run are expected;
# re-run those tests alone with "-Y 1" (dieharder's resolve-ambiguity mode) and
# they should end PASSED.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=quick
streams="words masks"
seed=20261202
while [ $# -gt 0 ]; do
    case "$1" in
        --full) mode=full ;;
        --quick) mode=quick ;;
        --stream) streams="$2"; shift ;;
        --seed) seed="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "randomness.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
command -v dieharder >/dev/null || { echo "randomness.sh: dieharder not found (apt-get install dieharder)" >&2; exit 2; }
PY=${PYTHON:-python}
"$PY" -c "import dropcore" || { echo "randomness.sh: dropcore is not importable by $PY" >&2; exit 2; }

# Writes the chosen stream to stdout until dieharder closes the pipe.
feed() {
    "$PY" - "$1" "$seed" <<'EOF'
import sys
import numpy as np
import dropcore
from dropcore import _core
import dropcore.nn.functional as F

which, seed = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
chunk = 1 << 22
try:
    if which == "words":
        offset = 0
        while True:
            out.write(_core.philox_words(seed, offset, chunk).tobytes())
            offset += chunk
    else:
        g = dropcore.Generator(seed)
        ones = np.ones(8 * chunk, np.float32)
        buf = np.empty_like(ones)
        while True:
            F.dropout(ones, 0.5, generator=g, out=buf)
            out.write(np.packbits(buf != 0, bitorder="little").tobytes())
except (BrokenPipeError, KeyboardInterrupt):
    sys.stderr.close()  # dieharder has read enough
EOF
}

if [ "$mode" = full ]; then
    tests=("-a")
else
    # The "Good" tests that finish in minutes on a fast stream.
    tests=(-d0 -d1 -d2 -d3 -d4 -d8 -d9 -d15 -d100 -d101 -d102 "-d200 -n8" -d203 -d205)
fi

echo "dropcore $("$PY" -c 'import dropcore; print(dropcore.__version__)'), ISA $("$PY" -c 'from dropcore import _core; print(_core.simd_isa())'), seed $seed, mode $mode"
echo "CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
status=0
for s in $streams; do
    log=$(mktemp)
    echo "== stream: $s"
    missing=0
    for t in "${tests[@]}"; do
        got=$(feed "$s" | dieharder -g 200 $t 2>/dev/null | grep -E "PASSED|WEAK|FAILED" || true)
        if [ -z "$got" ]; then
            echo "   dieharder $t: no result (the stream could not be produced?)"
            missing=$((missing + 1))
        else
            echo "$got" | tee -a "$log"
        fi
    done
    pass=$(grep -c PASSED "$log" || true); weak=$(grep -c WEAK "$log" || true); fail=$(grep -c FAILED "$log" || true)
    echo "== $s: $pass PASSED, $weak WEAK, $fail FAILED, $missing without result"
    [ "$fail" -eq 0 ] && [ "$missing" -eq 0 ] || status=1
    rm -f "$log"
done
exit $status
