"""d2l MLP / MC benchmark: `python bench/bench_mlp.py [--quick]`."""

import sys

from dropcore.benchmarks.mlp import run

if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
