"""A run opened once: its store row, config, files and class names (no TensorFlow).

Evaluation, prediction and export each start from `open_run(run_id, ws)`: it
reads the run from the store once, refuses a run that is not completed or
whose model files are missing or corrupt, and reads the class names the first
time they are needed. `tlcore.engine.runmodel` builds the run's model from
the same object, so nothing is read twice along the way.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlcore.config import RunConfig
from tlcore.data import run_manifest
from tlcore.errors import DatasetError, NotFoundError, RunStateError
from tlcore.store import COMPLETED, RunRecord, RunStore
from tlcore.workspace import RunFiles, Workspace


@dataclass
class OpenedRun:
    """A run as `open_run` read it.

    Attributes:
        id: The run id.
        ws: The workspace.
        record: Its row in the run store.
        config: Its run config.
        files: Its files in the workspace.
    """

    id: str
    ws: Workspace
    record: RunRecord
    config: RunConfig
    files: RunFiles

    @functools.cached_property
    def classes(self) -> list[str]:
        """Class names, index = model output (read once, when first asked for).

        Read from `runs/<id>/class_names.json` when the trainer wrote one (it
        survives deleting the dataset), else from the run's dataset manifest.

        Raises:
            DatasetError: if neither is available.
        """
        path = self.files.class_names
        if path.is_file():
            return list(json.loads(path.read_text(encoding="utf-8")))
        try:
            return list(self.manifest()["classes"])
        except NotFoundError:
            raise DatasetError(
                f"Run {self.id} has no {path.name} and its dataset {self.config.dataset!r} is "
                "gone, so its class names are unknown.") from None


    def manifest(self, dataset: str | None = None) -> dict[str, Any]:
        """The manifest of `dataset` (default the run's own) as the run reads it.

        The run's own dataset is read at the version the run trained on, so that
        editing the dataset never changes what the run is evaluated on; another
        dataset is read as it is now.

        Raises:
            NotFoundError: if the dataset, or the run's version of it, does not exist.
        """
        return run_manifest(self.ws, self.id, dataset or self.config.dataset, self.config.dataset)


def open_run(run_id: str, ws: Workspace | None = None, *,
             require_completed: bool = True) -> OpenedRun:
    """Read run `run_id` once for evaluation, prediction or export.

    Args:
        run_id: The run.
        ws: The workspace; default `Workspace.from_env()`.
        require_completed: Refuse a run that is not completed, or whose model is
            missing or corrupt. False lets the worker evaluate its own run before
            it marks the run completed.

    Raises:
        NotFoundError: if the run, or (completed) its model, does not exist.
        RunStateError: if `require_completed` and the run is not completed.
        WeightsError: if its `model.keras` (a run trained before light runs) is
            truncated or corrupt.
    """
    ws = ws or Workspace.from_env()
    record = RunStore(ws).get_run(run_id)
    run = OpenedRun(run_id, ws, record, RunConfig.from_dict(record["config"]), ws.run(run_id))
    if require_completed:
        if record["status"] != COMPLETED:
            raise RunStateError(
                f"Run {run_id} is {record['status']}, not completed; wait for it to finish, or "
                "train it again if it failed.")
        check_model_files(run.files)
    return run


def check_model_files(files: RunFiles) -> None:
    """Refuse a run without a model: its trained weights, or a complete older `model.keras`.

    Raises:
        NotFoundError: if the run has neither.
        WeightsError: if its `model.keras` is truncated or corrupt.
    """
    if files.trained.is_file():
        return
    if not files.model.is_file():
        raise NotFoundError(
            f"Run {files.id} has no model in {files.dir}: neither trained weights "
            f"({files.trained.name}) nor {files.model.name}.")
    files.check_model()


def class_mapping(run_classes: list[str], dataset_classes: list[str], dataset: str) -> np.ndarray:
    """Map a dataset's label indices onto a run's output indices by class name.

    Raises:
        DatasetError: if the class sets differ, naming the missing and extra classes.
    """
    missing = [c for c in run_classes if c not in dataset_classes]
    extra = [c for c in dataset_classes if c not in run_classes]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"extra {', '.join(map(repr, extra))}")
        raise DatasetError(
            f"Dataset {dataset!r} does not have the run's classes ({'; '.join(parts)}); "
            f"evaluating on another dataset needs exactly the classes "
            f"{', '.join(map(repr, run_classes))}.")
    return np.array([run_classes.index(c) for c in dataset_classes], dtype=np.int32)
