"""Benchmark: the Runs page with a few runs and with thousands, opened and ticked.

    python -m bench.runs_page [--small 50] [--large 5000] [--epochs 10] [--tick 10]
                              [--repeats 5] [--out docs/benchmarks.md]

Builds two workspaces of finished runs (each with its per-epoch metrics, configs
that differ in learning rate, pooling and head), written to SQLite in bulk. For
each, Streamlit's AppTest runs the real dashboard: "open" is `app.py`'s first
run plus the switch to the Runs page (until its table is drawn); "tick" is what
the browser reruns after ticking --tick rows of the table: the page draws the
table and what follows it as one fragment (`tlcore.ui.runs_view.runs_section`),
so a tick reruns that fragment alone, with the arguments of the page's last full
run. AppTest always reruns a whole script, so the tick runs the fragment's
function as its own script (`tick_script`, its arguments computed once, as the
page computed them); the rerun of the whole page is given too. Each figure is the
best of --repeats in one process, after an uncounted open and tick that import
what the pages need; the first open is given too.

Targets: the page with --large runs opens within 1.1x of the page with --small
runs; a tick (with --large runs in the store) takes at most 0.3x of an open.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import recipe

OPEN_RATIO_MAX = 1.1
TICK_RATIO_MAX = 0.3
RUNS_PAGE = "app_pages/runs.py"
TITLE = "Runs page · SQLite"  # then the date: each run adds its own section


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.runs_page",
                                description=__doc__.split("\n")[0])
    p.add_argument("--small", type=int, default=50, help="runs in the small store")
    p.add_argument("--large", type=int, default=5000, help="runs in the large store")
    p.add_argument("--epochs", type=int, default=10, help="metric rows per run")
    p.add_argument("--tick", type=int, default=10, help="rows ticked for the tick figure")
    p.add_argument("--repeats", type=int, default=5, help="timings per figure (best kept)")
    p.add_argument("--out", default=str(recipe.ROOT / "docs" / "benchmarks.md"),
                   help="markdown file whose section to write ('' for none)")
    return p.parse_args(argv)


def build_store(home: Path, runs: int, epochs: int) -> Any:
    """A workspace at `home` with `runs` finished runs of `epochs` metric rows each."""
    from sqlalchemy import insert

    from tlcore.config import RunConfig
    from tlcore.runs import device
    from tlcore.store import COMPLETED, FAILED, RunStore
    from tlcore.store.connection import database_url, engine
    from tlcore.store.tables import metrics_table, runs_table
    from tlcore.workspace import Workspace

    ws = Workspace.from_env(home)
    RunStore(ws)  # the schema
    # The device probe already answered, as on a server after its first probe.
    (ws.cache_dir / device.DEVICE_CACHE_FILE).write_text(json.dumps({
        "device": "CPU", "gpus": [], "mixed_precision": False, "backend": "tensorflow",
        "backends": ["tensorflow"]}))
    now = time.time()
    run_rows, metric_rows = [], []
    for i in range(runs):
        config = RunConfig.from_dict({
            "dataset": "pets" if i % 2 else "flowers", "image_size": 32,
            "base": {"weights": "none"},
            "head": {"pooling": ("flatten", "avg", "max")[i % 3], "dense": [64 + i % 7 * 32]},
            "train": {"learning_rate": 1e-4 * (1 + i % 97), "epochs": epochs}})
        run_id = f"{i:012x}"
        best = 0.5 + (i % 40) / 100
        run_rows.append({
            "id": run_id, "seq": i + 1, "name": f"run-{i + 1}", "dataset": config.dataset,
            "config": config.to_json(None), "status": FAILED if i % 25 == 0 else COMPLETED,
            "created": now - (runs - i) * 60, "started": now - (runs - i) * 60,
            "ended": now - (runs - i) * 60 + 95, "device": "CPU",
            "best_val_accuracy": best, "best_val_loss": 0.4, "best_epoch": epochs,
            "test_metrics": json.dumps({"loss": 0.5, "accuracy": best - 0.05}),
            "tags": json.dumps(["baseline"]) if i % 10 == 0 else None,
            "note": "a note" if i % 13 == 0 else None})
        metric_rows.extend({
            "run_id": run_id, "epoch": e, "phase": 1, "loss": 1.0 / e,
            "accuracy": 0.4 + 0.05 * e, "val_loss": 1.2 / e, "val_accuracy": 0.35 + 0.05 * e,
            "learning_rate": 1e-3, "epoch_time": 1.5} for e in range(1, epochs + 1))
    with engine(database_url(ws)).begin() as con:
        con.execute(insert(runs_table), run_rows)
        con.execute(insert(metrics_table), metric_rows)
    return ws


def tick_script() -> None:
    """The Runs page's fragment as a script: what a tick reruns (arguments from the first run)."""
    import streamlit as st

    from tlcore import auth
    from tlcore.store import RunFilter, RunStore
    from tlcore.ui.runs_table import DEFAULT_COLUMNS
    from tlcore.ui.runs_view import runs_section
    from tlcore.workspace import Workspace

    if "bench_args" not in st.session_state:
        ws = Workspace.from_env()
        store = RunStore(ws)
        which = RunFilter()
        st.session_state["bench_args"] = (ws, store, auth.OPERATOR, store.run_facets(), which,
                                          DEFAULT_COLUMNS, store.runs_page(which, limit=0)[1])
    runs_section(*st.session_state["bench_args"])


def timed_tick(app: Any, tick: int) -> float:
    """Seconds of `app`'s rerun after ticking the first `tick` rows of the runs table."""
    app.session_state["runs_table"] = {"selection": {"rows": list(range(tick)), "columns": []}}
    start = time.perf_counter()
    app.run()
    seconds = time.perf_counter() - start
    if app.exception or (tick >= 2 and not app.subheader):
        raise RuntimeError(f"Ticking {tick} runs did not compare them: {app.exception}")
    return seconds


def measure(home: Path, tick: int, repeats: int) -> dict[str, float]:
    """Open and tick timings (seconds) of the Runs page over the workspace at `home`."""
    from streamlit import config as streamlit_config
    from streamlit.testing.v1 import AppTest

    from tlcore.ui import studio

    os.environ["TLCORE_HOME"] = str(home)
    # No warm worker and no inference service: a server starts them once, not at each
    # open, and their imports of Keras would share the CPU with what is measured here.
    os.environ["TLCORE_WARM_WORKERS"] = os.environ["TLCORE_INFER_SERVICE"] = "0"
    # Loopback, as `make run` serves it: the local operator, no sign-in.
    streamlit_config.set_option("server.address", "127.0.0.1")
    opens, pages, ticks, fragments = [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        at = AppTest.from_file(str(studio.APP), default_timeout=120)
        at.run()
        page_start = time.perf_counter()
        at.switch_page(RUNS_PAGE).run()
        end = time.perf_counter()
        if at.exception or not at.dataframe(key="runs_table").value.shape[0]:
            raise RuntimeError(f"The Runs page did not draw its table: {at.exception}")
        opens.append(end - start)
        pages.append(end - page_start)
        ticks.append(timed_tick(at, tick))
        frag = AppTest.from_function(tick_script, default_timeout=120)
        frag.run()
        fragments.append(timed_tick(frag, tick))
    return {"open_first": opens[0], "open": min(opens), "page": min(pages),
            "page_tick": min(ticks), "tick": min(fragments)}


def floor_figures(home: Path, tick: int) -> dict[str, float]:
    """Seconds of what every rerun waits for (best of 5): the store's answers, and the
    comparison's figures for `tick` runs."""
    from tlcore.charts import parcoords
    from tlcore.charts import runs as charts
    from tlcore.store import RunFilter, RunStore
    from tlcore.ui.runs_table import table_frame
    from tlcore.workspace import Workspace

    store = RunStore(Workspace.from_env(home))

    def best(call: Any) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return min(times)

    def figures() -> None:
        ids = [r["id"] for r in store.runs_page(RunFilter(), limit=tick)[0]]
        chosen = table_frame(store.get_runs(ids), set())
        labels = dict(zip(chosen["id"], chosen["run"], strict=True))
        metrics = charts.metrics_frame(store.metrics_for(ids), labels)
        charts.learning_curves(metrics, "accuracy", runs=list(labels.values()))
        charts.final_metrics_bar(chosen)
        parcoords.parallel_coordinates(chosen, parcoords.differing_params(chosen, limit=None))

    return {"facets": best(store.run_facets),
            "page_rows": best(lambda: store.runs_page(RunFilter(), limit=100)),
            "all_rows": best(lambda: store.runs_page(RunFilter())),
            "figures": best(figures)}


def render(args: argparse.Namespace, small: dict[str, float], large: dict[str, float],
           floor: dict[str, float]) -> str:
    """The markdown section for docs/benchmarks.md."""
    open_ratio = large["open"] / small["open"]
    tick_ratio = large["tick"] / large["open"]
    rows = [
        ("Open, app.py then the Runs page, best of "
         f"{args.repeats} (first)", small, large, "open", "open_first"),
        ("Runs page alone (the switch from app.py)", small, large, "page", None),
        (f"Tick {args.tick} runs: the fragment's rerun (table and comparison)", small, large,
         "tick", None),
        (f"Tick {args.tick} runs: a rerun of the whole page (before)", small, large,
         "page_tick", None),
    ]
    lines = [
        f"Runs of {args.epochs} epochs each (finished, configs differing), SQLite, in temp "
        "workspaces; Streamlit's AppTest runs the real pages. Python "
        f"{platform.python_version()}, {os.cpu_count()} CPU cores. Measured "
        f"{time.strftime('%Y-%m-%d')} with `python -m bench.runs_page`.",
        "",
        f"| figure (s) | {args.small} runs | {args.large} runs |",
        "| --- | ---: | ---: |",
    ]
    for label, s, b, key, first in rows:
        cells = [f"{d[key]:.2f}" + (f" ({d[first]:.2f})" if first else "") for d in (s, b)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
        f"| Open with {args.large} runs ≤ {OPEN_RATIO_MAX}x open with {args.small} | "
        f"{open_ratio:.2f}x | {'yes' if open_ratio <= OPEN_RATIO_MAX else 'no'} |",
        f"| Tick {args.tick} ({args.large} in the store) ≤ {TICK_RATIO_MAX}x open | "
        f"{tick_ratio:.2f}x | {'yes' if tick_ratio <= TICK_RATIO_MAX else 'no'} |",
        "",
        f"The floor with {args.large} runs: each rerun asks the store for the filters' "
        f"options ({floor['facets'] * 1000:.0f} ms: distinct datasets, sweeps, tags and "
        f"repeated names) and one page of 100 rows ({floor['page_rows'] * 1000:.0f} ms with "
        "its count); the options grow linearly with the runs (index scans, no config "
        "parsed), the page does not. Beyond 500 matching runs the CSV is built when its "
        f"button is clicked (every matching run, {floor['all_rows'] * 1000:.0f} ms to read "
        "before parsing their configs), never on a rerun. The table, the charts and the "
        "comparison stay the size of a page and of the ticked runs; the rest of an open "
        "is Streamlit and the app's first run. A tick reruns the fragment only: one page "
        "of rows, the table, and the comparison of the ticked runs, whose store reads and "
        f"three figures (learning curves, final metrics, parallel coordinates) take "
        f"{floor['figures'] * 1000:.0f} ms for {args.tick} runs; that grows with the ticked "
        "runs only (Plotly validates each trace once: two curves per run), never with the "
        "runs in the store. The warm worker and the inference service are off here: a "
        "server starts them once, and their imports of Keras would share the 2 CPU cores "
        "with what is measured.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-runs-") as tmp:
        homes = {}
        for size in (args.small, args.large):
            start = time.perf_counter()
            homes[size] = Path(tmp) / f"ws{size}"
            build_store(homes[size], size, args.epochs)
            print(f"built {size} runs in {time.perf_counter() - start:.1f} s", flush=True)
        measure(homes[args.small], args.tick, 1)  # imports and first runs, not counted
        small = measure(homes[args.small], args.tick, args.repeats)
        large = measure(homes[args.large], args.tick, args.repeats)
        floor = floor_figures(homes[args.large], args.tick)
    text = render(args, small, large, floor)
    print(text)
    if args.out:
        recipe.write_section(Path(args.out), f"{TITLE} · {time.strftime('%Y-%m-%d')}", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
