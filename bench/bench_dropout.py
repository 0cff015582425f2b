"""Element dropout vs memcpy / NumPy / PyTorch / JAX: `python bench/bench_dropout.py [--quick]`."""

import sys

from dropcore.benchmarks.dropout import run

if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
