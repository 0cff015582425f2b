"""d2l MLP / MC benchmark: `python bench/bench_mc.py [--quick]`."""

import sys

from dropcore.benchmarks.mc import run

if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
