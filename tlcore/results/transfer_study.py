"""The transfer study: on this dataset, when does pretraining help, and when does it hurt?

Transfer helps most when the target data are scarce and the domains related,
and can hurt (negative transfer) otherwise. A study makes that visible on the
user's own data: for each training-set size (images per class, `train.subset`),
one run with the pretrained base (the config as given) and its from-scratch
baseline (`transfer.baseline_config`: same data, size, head and seed; every
layer trained from random init). The validation and test splits stay whole, so
every run is scored on the same images.

Runs are launched into the ordinary queue, tagged `extra.study`,
`extra.setting` ("pretrained" or "scratch") and `extra.images_per_class`.
This module imports no TensorFlow.
"""

from __future__ import annotations

from typing import Any

from tlcore.config import RunConfig
from tlcore.errors import ConfigError
from tlcore.results import transfer
from tlcore.runs.launch import launch_many
from tlcore.store import RunStore, new_run_id
from tlcore.workspace import Workspace

DEFAULT_SIZES = (5, 10, 25, 50, 100)
PRETRAINED, SCRATCH = "pretrained", "scratch"
SETTING_LABELS = {PRETRAINED: "Pretrained base", SCRATCH: "From scratch"}
# A gap smaller than this many points of test accuracy is no clear difference.
MARGIN_POINTS = 1.0


def parse_sizes(text: str | list[int]) -> list[int]:
    """Images per class, e.g. "5,10,25": whole numbers >= 2, each once, ascending.

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
    return sizes


def plan(dataset: str, sizes: list[int], overrides: list[str] | dict[str, Any] | None = None
         ) -> list[tuple[str, int, RunConfig]]:
    """`(setting, images per class, config)` of every run of a study, pretrained first.

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

    Args:
        owner: The signed-in user who launches it, owner of its runs; None: the
            local operator.

    Raises:
        ConfigError, NotFoundError, WeightsError: as `runs.launch.launch`; nothing is
            queued when any run is refused.
        QuotaError: nothing is queued when the study's runs would pass the owner's
            `TLCORE_MAX_RUNS_PER_USER` (counted in the transaction that queues them).
    """
    study_id = new_run_id()
    store = RunStore(ws)
    runs = plan(dataset, sizes, overrides)
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

    Accuracies are None until the run completes.
    """
    out = []
    for run in runs_of(ws, study_id):
        extra = run["extra"] or {}
        out.append({"setting": extra["setting"], "images_per_class": extra["images_per_class"],
                    "train_images": extra.get("train_images"), "status": run["status"],
                    "val_accuracy": run["best_val_accuracy"],
                    "test_accuracy": (run["test_metrics"] or {}).get("accuracy"),
                    "run_id": run["id"]})
    return sorted(out, key=lambda r: (r["setting"] != PRETRAINED, r["images_per_class"]))


def gaps(study_rows: list[dict[str, Any]]) -> dict[int, float]:
    """Pretrained minus scratch test accuracy, in points, per size where both are scored."""
    score = {(r["setting"], r["images_per_class"]): r["test_accuracy"] for r in study_rows
             if r["test_accuracy"] is not None}
    return {size: 100 * (score[(PRETRAINED, size)] - score[(SCRATCH, size)])
            for (setting, size) in sorted(score) if setting == PRETRAINED
            and (SCRATCH, size) in score}


def reading(study_rows: list[dict[str, Any]]) -> str:
    """The result in one plain-language paragraph."""
    by_size = gaps(study_rows)
    if not by_size:
        return "No size has both runs scored yet; the reading appears as they complete."
    helped = [s for s, g in by_size.items() if g >= MARGIN_POINTS]
    hurt = [s for s, g in by_size.items() if g <= -MARGIN_POINTS]
    first, last = min(by_size), max(by_size)

    def at(size: int) -> str:
        return f"{by_size[size]:+.0f} points at {size} images per class"

    if len(helped) == len(by_size):
        text = (f"Pretrained features beat training from scratch at every size tried ("
                f"{at(first)}" + (f", {at(last)}" if last != first else "") + "): positive "
                "transfer.")
        if last != first and by_size[last] < by_size[first]:
            text += (" The gap narrows as your own data grow, as expected when the domains "
                     "are related and data are scarce.")
    elif len(hurt) == len(by_size):
        text = (f"Training from scratch beat the pretrained features at every size tried ("
                f"{at(first)}): negative transfer. The pretrained features suit these images "
                "poorly; a distant domain trains better from its own data.")
    elif helped and hurt:
        text = (f"Transfer helped with {', '.join(map(str, helped))} images per class and hurt "
                f"with {', '.join(map(str, hurt))} ({at(first)}, {at(last)}): it pays while "
                "data are scarce and turns negative once there are enough of your own.")
    else:
        text = (f"No clear difference at most sizes (within {MARGIN_POINTS:g} point): "
                + "; ".join(at(s) for s in by_size) + ".")
    return text + (" Each point is one run of one seed: differences of a few points can be "
                   "noise.")
