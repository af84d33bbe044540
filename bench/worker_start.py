"""What a worker imports before it trains: the worker's path against a bare `import keras`.

    python -m bench.worker_start [--repeats 5] [--out docs/benchmarks.md]

Each figure is the best of `--repeats` fresh `python -c ...` processes, timed from
spawn to exit, all in one run so that the ratios compare like with like:

* a bare `import keras` (TensorFlow backend), with whatever else is installed;
* the run worker's imports (`backend.activate`, `backend.skip_unused_imports`,
  then `tlcore.engine.train`), as `python -m tlcore.workers.run` does them;
* the same without `skip_unused_imports`, as workers imported before.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date

from bench.recipe import ROOT, publish

WORKER = ("from tlcore import backend; backend.activate('tensorflow'); {skip}"
          "import tlcore.engine.train")
CASES = {
    "bare `import keras`": "import keras",
    "worker imports (`tlcore.engine.train`, unused frameworks skipped)":
        WORKER.format(skip="backend.skip_unused_imports('tensorflow'); "),
    "worker imports, nothing skipped (before)": WORKER.format(skip=""),
}


def timed(code: str) -> float:
    """Seconds from spawning `python -c code` to its exit."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker_start", description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to only print)")
    args = p.parse_args(argv)
    best = {name: min(timed(code) for _ in range(args.repeats)) for name, code in CASES.items()}
    bare = best["bare `import keras`"]
    rows = "\n".join(f"| {name} | {seconds:.2f} s | {seconds / bare:.2f}x |"
                     for name, seconds in best.items())
    text = (f"Fresh `python -c` processes, spawn to exit, best of {args.repeats}; Keras "
            f"backend TensorFlow, with JAX, pandas and scikit-learn installed "
            f"(`requirements.txt`); "
            f"{os.cpu_count()} CPU cores. Measured {date.today().isoformat()} with "
            f"`python -m bench.worker_start`.\n\n"
            f"| process | seconds | against a bare `import keras` |\n| --- | ---: | ---: |\n"
            f"{rows}\n\nTensorFlow imports JAX for TFLite's helpers, and Keras imports pandas "
            f"for its data adapters and scikit-learn for its wrappers, each only when "
            f"installed; a worker never uses them, so it makes them unimportable before Keras "
            f"loads. The remaining floor is TensorFlow's own import.")
    publish("Worker start · imports · CPU", text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
