"""Helpers for the evaluation tests: tiny datasets and hand-made runs (no training)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from tlcore import data as datasets_api
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.store import COMPLETED, RunStore
from tlcore.workspace import Workspace

SIZE = 32
CLASSES = ("disc", "square", "triangle")


def make_dataset(ws: Workspace, name: str, classes: tuple[str, ...] = CLASSES,
                 per_class: int = 8, seed: int = 0) -> dict[str, Any]:
    """Import generated class folders as dataset `name` (val 25 %, test 25 %)."""
    src = write_class_folders(ws.root.parent / f"src-{name}", classes, per_class=per_class,
                              size=SIZE, seed=seed)
    return datasets_api.import_dataset(src, name, val=0.25, test=0.25, ws=ws)


def run_config(dataset: str, weights: str = "none", **overrides: Any) -> RunConfig:
    data = {"dataset": dataset, "image_size": SIZE, "base": {"weights": weights},
            "head": {"dense": [8], "dropout": 0.0}, "train": {"epochs": 3}}
    return RunConfig.from_dict(data).with_overrides(overrides)


def make_run(ws: Workspace, config: RunConfig, *, model: Any = None, status: str = COMPLETED,
             val_accuracy: list[float] | None = None, test_accuracy: float | None = None,
             name: str | None = None) -> str:
    """A run as the trainer leaves it: row, config.json, optional model.keras and metrics."""
    store = RunStore(ws)
    run_id = store.create_run(config, name=name)
    folder = ws.run(run_id).dir
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config.to_json())
    if model is not None:
        model.save(folder / "model.keras")
    for epoch, acc in enumerate(val_accuracy or [], start=1):
        store.add_epoch(run_id, epoch, 1, {"loss": 1.0, "accuracy": acc, "val_loss": 1.0,
                                           "val_accuracy": acc})
    fields: dict[str, Any] = {"status": status}
    if val_accuracy:
        fields["best_val_accuracy"] = max(val_accuracy)
    if test_accuracy is not None:
        fields["test_metrics"] = {"accuracy": test_accuracy}
    store.update_run(run_id, **fields)
    return run_id


def engine_model(config: RunConfig, num_classes: int, seed: int = 0) -> Any:
    """The engine's model for `config` with seeded random weights (TensorFlow)."""
    import keras

    from tlcore.engine.model import build_model

    keras.utils.set_random_seed(seed)
    return build_model(config, num_classes, mixed_precision=False)


def write_evaluation(ws: Workspace, run_id: str, evaluation: dict[str, Any]) -> None:
    """Store an evaluation JSON as `evaluate_run` would."""
    folder = ws.run(run_id).dir / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{evaluation['dataset']}.json").write_text(json.dumps(evaluation))


def write_keras_zip(path: Path, *, truncated: bool = False) -> Path:
    """A file shaped like `model.keras`: the zip entries Keras writes, with dummy contents.

    With `truncated`, only its first half is kept, as an interrupted copy or a
    full disk leaves a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3"}))
        zf.writestr("config.json", json.dumps({"class_name": "Functional"}))
        zf.writestr("model.weights.h5", b"\0" * 4096)
    if truncated:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path
