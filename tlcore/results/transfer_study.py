"""The transfer study: on this dataset, when does pretraining help, and when does it hurt?

Transfer helps most when the target data are scarce and the domains related,
and can hurt (negative transfer) otherwise. A study makes that visible on the
user's own data: for each training-set size (images per class, `train.subset`),
one run with the pretrained base (the config as given) and its from-scratch
baseline (`transfer.baseline_config`: same data, size, head and seed; every
layer trained from random init). The validation and test splits stay whole, so
every run is scored on the same images.

Runs are launched into the ordinary queue, the fast pretrained runs first and
the slow from-scratch baselines after them, tagged `extra.study`,
`extra.setting` ("pretrained" or "scratch") and `extra.images_per_class`.

The reading covers finished pairs only and says how many runs are still to
come. A size's gap counts as clear only when the 95% interval of the difference
between the two test accuracies excludes 0 (Wilson score intervals combined by
Newcombe's method): on a test split of 60 images, one image is 1.7 points, and a
gap of a few points is no clear difference. This module imports no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

from tlcore.config import RunConfig
from tlcore.errors import ConfigError
from tlcore.results import transfer
from tlcore.runs.launch import launch_many
from tlcore.store import ACTIVE_STATUSES, COMPLETED, RunStore, new_run_id
from tlcore.workspace import Workspace

DEFAULT_SIZES = (5, 10, 25, 50, 100)
# Each size queues two runs: a list of a thousand sizes once queued two thousand.
MAX_SIZES = 12
PRETRAINED, SCRATCH = "pretrained", "scratch"
SETTING_LABELS = {PRETRAINED: "Pretrained base", SCRATCH: "From scratch"}
# Where a run's test-set size is unknown (runs stored before it was), a gap smaller
# than this many points of test accuracy is no clear difference.
MARGIN_POINTS = 1.0
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
HELPED, HURT, UNCLEAR = "helped", "hurt", "no clear difference"


def parse_sizes(text: str | list[int]) -> list[int]:
    """Images per class, e.g. "5,10,25": whole numbers >= 2, each once, ascending.

    At most `MAX_SIZES` of them: each size queues two runs.

    Raises:
        ConfigError: for anything else, in one line.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        sizes = sorted({int(str(item).strip()) for item in items if str(item).strip()})
    except ValueError:
        raise ConfigError(f"sizes must be whole numbers of images per class separated by "
                          f"commas, e.g. 5,10,25. Received: {text!r}") from None
    if not sizes or sizes[0] < 2:
        raise ConfigError(f"sizes must be at least 2 images per class. Received: {text!r}")
    if len(sizes) > MAX_SIZES:
        raise ConfigError(f"sizes must be at most {MAX_SIZES} per study (each queues two runs); "
                          f"pick fewer. Received: {len(sizes)} sizes")
    return sizes


def plan(dataset: str, sizes: list[int], overrides: list[str] | dict[str, Any] | None = None
         ) -> list[tuple[str, int, RunConfig]]:
    """`(setting, images per class, config)` of every run of a study, size by size.

    Each size's pretrained run comes first, then its from-scratch baseline.

    The pretrained config is the default config (or `overrides` of it) with
    `train.subset` set to the size; the scratch one is its baseline.

    Raises:
        ConfigError: for an invalid override, or a base without pretrained weights.
    """
    base = RunConfig(dataset=dataset)
    if overrides:
        base = base.with_overrides(overrides)
    if base.base.weights == "none":
        raise ConfigError("A transfer study compares pretrained weights with training from "
                          "scratch: base.weights must name pretrained weights (imagenet, a "
                          "weights file or run:<id>). Received: base.weights=none")
    runs = []
    for size in sizes:
        pretrained = base.with_overrides({"train.subset": size})
        runs.append((PRETRAINED, size, pretrained))
        runs.append((SCRATCH, size, transfer.baseline_config(pretrained)))
    return runs


def launch(ws: Workspace, dataset: str, sizes: list[int],
           overrides: list[str] | dict[str, Any] | None = None,
           owner: str | None = None) -> str:
    """Queue every run of a study; returns the study id.

    The pretrained runs are queued first, smallest size first, and the
    from-scratch baselines after them: each pretrained run trains in a fraction of
    its baseline's time, so the study's first results come early.

    Args:
        ws: The workspace.
        dataset: The dataset's name.
        sizes: Images per class (`parse_sizes` checks them again).
        overrides: Overrides of the default config, as `RunConfig.with_overrides`.
        owner: The signed-in user who launches it, owner of its runs; None: the
            local operator.

    Raises:
        ConfigError: for more than `MAX_SIZES` sizes, or a size below 2.
        ConfigError, NotFoundError, WeightsError: as `runs.launch.launch`; nothing is
            queued when any run is refused.
        QuotaError: nothing is queued when the study's runs would pass the owner's
            `TLCORE_MAX_RUNS_PER_USER` (counted in the transaction that queues them).
    """
    study_id = new_run_id()
    store = RunStore(ws)
    runs = sorted(plan(dataset, parse_sizes(sizes), overrides), key=lambda r: r[0] != PRETRAINED)
    ids = launch_many([(config, f"transfer-{size}pc-{setting}")
                            for setting, size, config in runs], ws=ws, owner=owner)
    for run_id, (setting, size, _) in zip(ids, runs, strict=True):
        store.merge_extra(run_id, study=study_id, setting=setting, images_per_class=size)
    return study_id


def runs_of(ws: Workspace, study_id: str) -> list[dict[str, Any]]:
    """The study's runs, oldest first."""
    return [r for r in RunStore(ws).list_runs() if (r["extra"] or {}).get("study") == study_id]


def latest(ws: Workspace, dataset: str) -> str | None:
    """The newest study on `dataset`, or None."""
    for run in reversed(RunStore(ws).list_runs(dataset=dataset)):
        study = (run["extra"] or {}).get("study")
        if study:
            return study
    return None


def rows(ws: Workspace, study_id: str) -> list[dict[str, Any]]:
    """One row per setting and size: images per class, training images, val and test accuracy.

    Accuracies are None until the run completes; `test_images` is the size of the
    test split it was scored on (None where unknown).
    """
    out = []
    for run in runs_of(ws, study_id):
        extra = run["extra"] or {}
        out.append({"setting": extra["setting"], "images_per_class": extra["images_per_class"],
                    "train_images": extra.get("train_images"), "status": run["status"],
                    "val_accuracy": run["best_val_accuracy"],
                    "test_accuracy": (run["test_metrics"] or {}).get("accuracy"),
                    "test_images": (run["test_metrics"] or {}).get("n"),
                    "run_id": run["id"]})
    return sorted(out, key=lambda r: (r["setting"] != PRETRAINED, r["images_per_class"]))


def wilson_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy measured on `n` images (95% by default)."""
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(a: float, n_a: int, b: float, n_b: int) -> tuple[float, float]:
    """The 95% interval of accuracy `a` minus accuracy `b` (Newcombe's hybrid score method).

    Args:
        a: The first accuracy, measured on `n_a` images.
        n_a: Its number of test images.
        b: The second accuracy, measured on `n_b` images.
        n_b: Its number of test images.

    Returns:
        `(low, high)`, as fractions.
    """
    low_a, high_a = wilson_interval(a, n_a)
    low_b, high_b = wilson_interval(b, n_b)
    return (a - b - math.hypot(a - low_a, high_b - b),
            a - b + math.hypot(high_a - a, b - low_b))


def pairs(study_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each size whose two runs both completed with a test score, smallest first.

    Returns:
        Rows of `images_per_class`, `gap` (pretrained minus scratch test
        accuracy, in points), `low` and `high` (its 95% interval in points, None
        where a run's test-set size is unknown), `test_images` and `outcome`:
        `HELPED` or `HURT` when the interval excludes 0, else `UNCLEAR` (without
        an interval: when the gap is under `MARGIN_POINTS`).
    """
    scored = {(r["setting"], r["images_per_class"]): r for r in study_rows
              if r["status"] == COMPLETED and r["test_accuracy"] is not None}
    out = []
    for setting, size in sorted(scored):
        scratch = scored.get((SCRATCH, size))
        if setting != PRETRAINED or scratch is None:
            continue
        pre = scored[(PRETRAINED, size)]
        gap = 100 * (pre["test_accuracy"] - scratch["test_accuracy"])
        n_pre, n_scratch = pre.get("test_images"), scratch.get("test_images")
        if n_pre and n_scratch:
            low, high = (100 * v for v in difference_interval(
                pre["test_accuracy"], n_pre, scratch["test_accuracy"], n_scratch))
            outcome = HELPED if low > 0 else HURT if high < 0 else UNCLEAR
        else:
            low = high = None
            outcome = (HELPED if gap >= MARGIN_POINTS else HURT if gap <= -MARGIN_POINTS
                       else UNCLEAR)
        out.append({"images_per_class": size, "gap": gap, "low": low, "high": high,
                    "test_images": min(n_pre, n_scratch) if n_pre and n_scratch else None,
                    "outcome": outcome})
    return out


def gaps(study_rows: list[dict[str, Any]]) -> dict[int, float]:
    """Pretrained minus scratch test accuracy, in points, per size where both are scored."""
    return {p["images_per_class"]: p["gap"] for p in pairs(study_rows)}


def progress(study_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How far a study has come.

    Returns:
        `finished` (runs completed), `active` (queued or running), `ended` (failed,
        cancelled or lost), `total`, and `pending_sizes`: the sizes, ascending,
        with a run still queued or running.
    """
    active = [r for r in study_rows if r["status"] in ACTIVE_STATUSES]
    finished = sum(r["status"] == COMPLETED for r in study_rows)
    return {"finished": finished, "active": len(active),
            "ended": len(study_rows) - finished - len(active), "total": len(study_rows),
            "pending_sizes": sorted({r["images_per_class"] for r in active})}


def progress_text(study_rows: list[dict[str, Any]]) -> str:
    """A study's progress in words, e.g. "3 of 4 runs finished; 1 queued or running"."""
    state = progress(study_rows)
    text = f"{state['finished']} of {state['total']} runs finished"
    if state["active"]:
        text += f"; {state['active']} queued or running"
    if state["ended"]:
        text += f"; {state['ended']} failed or cancelled"
    return text


def _sizes(found: list[dict[str, Any]]) -> str:
    return ", ".join(str(p["images_per_class"]) for p in found)


def _at(p: dict[str, Any]) -> str:
    points = round(p["gap"])
    text = (f"{points:+d} point{'s' if abs(points) != 1 else ''} at {p['images_per_class']} "
            "images per class")
    if p["low"] is not None:
        text += f", 95% interval {p['low']:+.0f} to {p['high']:+.0f}"
    return text


def _verdict(found: list[dict[str, Any]], done: bool) -> str:
    """The sentences on the finished pairs: positive, negative, mixed or no clear transfer."""
    by = {o: [p for p in found if p["outcome"] == o] for o in (HELPED, HURT, UNCLEAR)}
    first, last = found[0], found[-1]
    join = "; " if first["low"] is not None else ", "
    ends = _at(first) + (join + _at(last) if last is not first else "")
    tried = "at every size tried" if done else "at every size finished so far"
    if len(by[HELPED]) == len(found):
        text = (f"Pretrained features beat training from scratch {tried} ({ends}): positive "
                "transfer.")
        if last is not first and last["gap"] < first["gap"]:
            text += (" The gap narrows as your own data grow, as expected when the domains "
                     "are related and data are scarce.")
        return text
    if len(by[HURT]) == len(found):
        return (f"Training from scratch beat the pretrained features {tried} ({_at(first)}): "
                "negative transfer. The pretrained features suit these images poorly; a "
                "distant domain trains better from its own data.")
    if by[HELPED] and by[HURT]:
        return (f"Transfer helped with {_sizes(by[HELPED])} images per class and hurt with "
                f"{_sizes(by[HURT])} ({ends}): it pays while data are scarce and turns "
                "negative once there are enough of your own.")
    if by[HELPED] or by[HURT]:
        clear = HELPED if by[HELPED] else HURT
        return (f"Transfer {clear} with {_sizes(by[clear])} images per class; no clear "
                f"difference with {_sizes(by[UNCLEAR])} ("
                + join.join(_at(p) for p in found) + ").")
    return "No clear difference at any size (" + join.join(_at(p) for p in found) + ")."


def reading(study_rows: list[dict[str, Any]]) -> str:
    """The result in one plain-language paragraph, from the finished pairs only.

    It says how many runs are still to finish (and which sizes wait for them),
    and calls a gap clear only as `pairs` does.
    """
    found = pairs(study_rows)
    state = progress(study_rows)
    if not found:
        text = "No size has both runs scored yet; the reading appears as they complete."
    else:
        text = _verdict(found, done=not state["active"])
        n = found[0]["test_images"]
        if n:
            text += (f" Each point is one run of one seed, scored on {n} test images (one "
                     f"image is {100 / n:.1f} points); a gap is clear only when its 95% "
                     "interval excludes 0.")
        else:
            text += (" Each point is one run of one seed: differences of a few points can be "
                     "noise.")
    if state["active"]:
        sizes = state["pending_sizes"]
        text += (f" Still to finish: {state['active']} of {state['total']} runs "
                 f"(size{'s' if len(sizes) != 1 else ''} {', '.join(map(str, sizes))}); the "
                 "reading covers the finished sizes only.")
    if state["ended"]:
        several = state["ended"] != 1
        text += (f" {state['ended']} run{'s' if several else ''} ended without a result and "
                 f"{'are' if several else 'is'} left out.")
    return text
