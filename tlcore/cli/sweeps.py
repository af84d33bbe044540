"""`python -m tlcore sweep start|list|show|cancel|resume|delete`: hyperparameter sweeps on Optuna.

    sweep start --config base.json --space space.json --trials N [--sampler tpe|random|grid]
                [--workers K] [--timeout S] [--name NAME] [--set KEY=VALUE ...] [--detach]
    sweep list [--json]
    sweep show SWEEP [--json]
    sweep cancel SWEEP
    sweep resume SWEEP [--workers K]
    sweep delete SWEEP
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tlcore.cli import print_json
from tlcore.cli.runs import load_config
from tlcore.errors import ConfigError
from tlcore.runs import sweeps
from tlcore.workspace import Workspace

FOLLOW_INTERVAL_S = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sweep` command group."""
    group = subparsers.add_parser("sweep", help="hyperparameter sweeps (Optuna): start, list, "
                                                 "show, cancel, resume, delete")
    sub = group.add_subparsers(dest="sweep_command", required=True, metavar="COMMAND")
    p = sub.add_parser("start", help="start a sweep; prints its id last")
    p.add_argument("--config", required=True, metavar="FILE", help="base run config (JSON)")
    p.add_argument("--space", required=True, metavar="FILE",
                   help='search space (JSON), e.g. {"head.dropout": {"low": 0, "high": 0.6}}')
    p.add_argument("--trials", type=int, required=True, metavar="N", help="number of trials")
    p.add_argument("--sampler", choices=sweeps.SAMPLERS, default="tpe")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="sweep workers in parallel (each takes a worker slot: TLCORE_MAX_WORKERS, "
                        "or one GPU each)")
    p.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    p.add_argument("--name", help="a display name")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a key of the base config")
    p.add_argument("--detach", action="store_true", help="return at once, sweep in background")
    p.set_defaults(func=_cmd_start)
    p = sub.add_parser("list", help="all sweeps, oldest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("show", help="every trial (run, parameters, state, val accuracy), best")
    p.add_argument("sweep", metavar="SWEEP")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_show)
    p = sub.add_parser("cancel", help="stop a sweep and its running trials")
    p.add_argument("sweep", metavar="SWEEP")
    p.set_defaults(func=_cmd_cancel)
    p = sub.add_parser("resume", help="fail the trials of killed workers and continue")
    p.add_argument("sweep", metavar="SWEEP")
    p.add_argument("--workers", type=int, metavar="K", help="default: as started")
    p.set_defaults(func=_cmd_resume)
    p = sub.add_parser("delete", help="cancel a sweep, then delete its trial runs and the sweep")
    p.add_argument("sweep", metavar="SWEEP")
    p.set_defaults(func=_cmd_delete)


def _read_json(path: str, what: str) -> Any:
    file = Path(path).expanduser()
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read the {what} file {file}: {exc.strerror or exc}.") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"The {what} file {file} is not valid JSON: {exc.msg} (line "
                          f"{exc.lineno}).") from None
    except ValueError:  # an integer longer than Python reads (4,300 digits)
        raise ConfigError(f"The {what} file {file} holds a number too long to read (over 4,300 "
                          f"digits).") from None
    except RecursionError:
        raise ConfigError(f"The {what} file {file} is nested too deeply.") from None


def _cmd_start(args: argparse.Namespace) -> int:
    ws = Workspace.from_env()
    base = load_config(args.config, args.overrides)
    space = _read_json(args.space, "space")
    sweep_id = sweeps.start(ws, base, space, args.trials, sampler=args.sampler,
                            workers=args.workers, timeout=args.timeout, name=args.name)
    if not args.detach:
        try:
            _follow(ws, sweep_id)
        except KeyboardInterrupt:
            print(f"\ncancelling sweep {sweep_id} ...", file=sys.stderr)
            sweeps.cancel(ws, sweep_id)
            print(sweep_id)
            return 130
    print(sweep_id)
    return 0


def _follow(ws: Workspace, sweep_id: str) -> None:
    """Print a line per finished trial until no worker is left."""
    shown: set[int] = set()
    while True:
        info = sweeps.summary(ws, sweep_id)
        for trial in info["trials"]:
            if trial["number"] in shown or trial["state"] == "running":
                continue
            shown.add(trial["number"])
            best = info["best"]
            print(f"trial {trial['number']}: {trial['state']}, val accuracy "
                  f"{_num(trial['best_val_accuracy'])}; best so far "
                  f"{_num(best and best['best_val_accuracy'])} "
                  f"({len(shown)}/{info['trials_planned']})", file=sys.stderr, flush=True)
        if not info["workers"]:
            return
        time.sleep(FOLLOW_INTERVAL_S)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cmd_list(args: argparse.Namespace) -> int:
    items = sweeps.list_sweeps(Workspace.from_env())
    if args.json:
        print_json(items)
        return 0
    if not items:
        print("no sweeps yet; start one with `python -m tlcore sweep start`")
        return 0
    for s in items:
        best = s["best"]
        print(f"{s['id']}  {s['name']}  {s['status']}  {s['finished']}/{s['trials_planned']} "
              f"trials  best {_num(best and best['best_val_accuracy'])}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    info = sweeps.summary(Workspace.from_env(), args.sweep)
    if args.json:
        print_json(info)
        return 0
    print(f"sweep {info['id']} ({info['name']}): {info['status']}, {info['sampler']}, "
          f"{info['finished']}/{info['trials_planned']} trials, objective {info['objective']}")
    for t in info["trials"]:
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in t["params"].items())
        print(f"  trial {t['number']:>3}  {t['state']:<8} {_num(t['best_val_accuracy'])}  "
              f"run {t['run_id'] or '-'}  {params}")
    if info["best"]:
        print(f"best: trial {info['best']['number']}, run {info['best']['run_id']}, "
              f"val accuracy {_num(info['best']['best_val_accuracy'])}")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    stopped = sweeps.cancel(Workspace.from_env(), args.sweep)
    print(f"sweep {args.sweep}: cancelled ({stopped} running trial(s) stopped)")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    pids = sweeps.resume(Workspace.from_env(), args.sweep, args.workers)
    print(f"sweep {args.sweep}: resumed with {len(pids)} worker(s)")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    deleted = sweeps.delete(Workspace.from_env(), args.sweep)
    print(f"sweep {args.sweep}: deleted with its {deleted} trial run(s)")
    return 0
