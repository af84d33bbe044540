"""Evaluate a finished run: metrics, confusion matrix, mistakes, domain shift.

The metric functions are plain numpy and need no TensorFlow. `evaluate_run`
opens the run once (`tlcore.engine.openrun`), loads its model when some split
needs predicting (TensorFlow, so worker or CLI only), predicts on the
test and val splits of the run's dataset, or of another dataset with the same
class names (a domain-shift check), and stores the result as JSON in
`runs/<id>/eval/<dataset>.json` with Grad-CAM overlays of the most confident
mistakes beside it. `load_evaluation` reads that file back without
TensorFlow, so the dashboard shows it instantly.

Conventions that differ between libraries, fixed here:

* A class absent from `y_true` has undefined recall and ROC AUC (reported as
  None, with a note) and is left out of the macro averages; the weighted
  averages give it weight 0 anyway.
* Precision of a class that is never predicted is 0 when the class occurs in
  `y_true` (every one of its examples was missed) and None when it does not.
* F1 is `2 TP / (2 TP + FP + FN)`, which equals the harmonic mean of precision
  and recall whenever both are defined.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.data import load_manifest
from tlcore.engine.gradcam import gradcam, overlay, png_bytes
from tlcore.engine.openrun import OpenedRun, class_mapping, open_run
from tlcore.errors import NotFoundError
from tlcore.store import RunStore
from tlcore.workspace import Workspace, atomic_write_text, check_dataset_name

EVAL_SPLITS = ("test", "val")
GRADCAM_PER_SPLIT = 12


# ---- metrics (numpy only) ---------------------------------------------------
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `(num_classes, num_classes)`: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U), ties counted as one half.

    Args:
        positive: Boolean `(N,)`, True for the positive class.
        scores: `(N,)` scores; higher means more likely positive.

    Returns:
        The AUC, or NaN when there are no positives or no negatives.
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # Tied scores share the mean of the ranks they span.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: list[str],
                           k: int = 3) -> dict[str, Any]:
    """Accuracy, top-k, per-class P/R/F1/AUC, averages and confusion matrix.

    Args:
        y_true: Integer labels `(N,)` in `[0, C)`.
        probs: Class probabilities `(N, C)` (rows need not sum to exactly 1).
        class_names: `C` names; index = label.
        k: Top-k accuracy counts a hit when the true class is among the `k`
            highest probabilities (`k` is capped at `C`).

    Returns:
        A JSON-ready dict: `n`, `accuracy`, `top_k`, `top_k_accuracy`,
        `per_class` (list of dicts with `class`, `precision`, `recall`, `f1`,
        `support`, `auc`), `macro` and `weighted` averages, `confusion`
        (`labels`, `counts`, `normalized` by true-class row) and `notes`.
        Undefined values are None.

    Raises:
        ValueError: if shapes or labels do not fit `class_names`.
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    c = len(class_names)
    if probs.ndim != 2 or probs.shape != (y_true.size, c):
        raise ValueError(f"probs must have shape (N, {c}) with N = len(y_true) = {y_true.size}. "
                         f"Received: probs.shape={probs.shape}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= c):
        raise ValueError(f"Labels must be in [0, {c}). Received: labels from {y_true.min()} "
                         f"to {y_true.max()}")
    if int(k) < 1:
        raise ValueError(f"k must be a positive integer. Received: k={k!r}")
    k = min(int(k), c)
    n = int(y_true.size)
    y_pred = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    fp, fn = predicted - tp, support - tp

    notes: list[str] = []
    per_class = []
    for i, name in enumerate(class_names):
        if predicted[i]:
            precision = tp[i] / predicted[i]
        else:
            precision = 0.0 if support[i] else math.nan
        recall = _ratio(tp[i], support[i])
        f1 = _ratio(2 * tp[i], 2 * tp[i] + fp[i] + fn[i])
        auc = roc_auc(y_true == i, probs[:, i]) if n else math.nan
        per_class.append({"class": name, "precision": precision, "recall": recall, "f1": f1,
                          "support": int(support[i]), "auc": auc})
    absent = [name for name, s in zip(class_names, support, strict=True) if not s]
    if absent:
        notes.append(f"No examples of {', '.join(absent)}: their recall and AUC are undefined "
                     "and they are left out of the macro averages.")
    if n and np.count_nonzero(support) == 1:
        notes.append("Only one class occurs, so no ROC AUC can be computed.")

    present = support > 0

    def macro(key: str) -> float:
        values = [row[key] for row, p in zip(per_class, present, strict=True)
                  if p and not math.isnan(row[key])]
        return float(np.mean(values)) if values else math.nan

    def weighted(key: str) -> float:
        values = np.array([row[key] for row in per_class], dtype=np.float64)
        ok = present & ~np.isnan(values)
        return float(np.average(values[ok], weights=support[ok])) if ok.any() else math.nan

    if n:
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        top_k_accuracy = float((top == y_true[:, None]).any(axis=1).mean())
        accuracy = float((y_pred == y_true).mean())
    else:
        top_k_accuracy = accuracy = math.nan
        notes.append("The split is empty.")
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = np.where(support[:, None] > 0, cm / np.maximum(support[:, None], 1), np.nan)

    out = {
        "n": n,
        "accuracy": accuracy,
        "top_k": k,
        "top_k_accuracy": top_k_accuracy,
        "per_class": per_class,
        "macro": {key: macro(key) for key in ("precision", "recall", "f1", "auc")},
        "weighted": {key: weighted(key) for key in ("precision", "recall", "f1")},
        "confusion": {"labels": list(class_names), "counts": cm.tolist(),
                      "normalized": normalized.tolist()},
        "notes": notes,
    }
    return _jsonable(out)


def _jsonable(value: Any) -> Any:
    """NaN -> None and numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _none_if_nan(value)
    return value


def mistakes(y_true: np.ndarray, probs: np.ndarray, class_names: list[str],
             files: list[str]) -> list[dict[str, Any]]:
    """Misclassified examples, most confident mistakes first.

    Returns:
        Dicts with `index` (position in the split), `file` (relative to the
        dataset folder), `true`, `predicted` (class names), `confidence`
        (probability of the predicted class) and `true_probability`.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if not y_true.size:
        return []
    y_pred = probs.argmax(axis=1)
    conf = probs[np.arange(y_true.size), y_pred]
    wrong = np.flatnonzero(y_pred != y_true)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")]
    return [{"index": int(i), "file": files[i], "true": class_names[y_true[i]],
             "predicted": class_names[y_pred[i]], "confidence": float(conf[i]),
             "true_probability": float(probs[i, y_true[i]])} for i in wrong]


# ---- runs ---------------------------------------------------------------------
def run_class_names(run_id: str, ws: Workspace | None = None) -> list[str]:
    """Class names of a run, index = model output (no TensorFlow; see `OpenedRun.classes`).

    Raises:
        NotFoundError: if the run does not exist.
        DatasetError: if the run's class names are unknown.
    """
    return open_run(run_id, ws, require_completed=False).classes


# ---- evaluation ---------------------------------------------------------------
def evaluate_run(run_id: str, ws: Workspace | None = None, dataset: str | None = None,
                 splits: tuple[str, ...] = EVAL_SPLITS, k: int = 3,
                 gradcam_per_split: int = GRADCAM_PER_SPLIT, model: Any = None,
                 require_completed: bool = True,
                 probs: dict[str, np.ndarray] | None = None,
                 progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Evaluate a completed run and store the result with the run.

    Args:
        run_id: A completed run.
        ws: The workspace (default: from $TLCORE_HOME).
        dataset: Dataset to evaluate on; default the run's own. Another dataset
            must have the same class names (any order): a domain-shift check.
        splits: Splits to evaluate; empty ones are reported with `n` = 0.
        k: For top-k accuracy.
        gradcam_per_split: Grad-CAM overlays stored for this many of the most
            confident mistakes of each split (0 for none).
        model: The run's model already in memory (the worker's, with the best
            weights); default: assembled by `tlcore.engine.runmodel.run_model`.
        require_completed: False lets the worker evaluate its own run before
            it marks the run completed, so results are there when it is.
        probs: Class probabilities per split the caller already has (the
            trainer's, from cached frozen features); other splits are predicted.
        progress: Called between steps (before and after each split's
            predictions and Grad-CAM); the worker's heartbeat.

    Returns:
        The stored evaluation: `run_id`, `dataset`, `trained_on`,
        `domain_shift`, `classes`, `image_size`, `created`, `eval_seconds` and
        `splits` (split name -> `classification_metrics` plus `mistakes` and
        `samples`: per-example `file`, `true`, `predicted`, `confidence`).

    Raises:
        RunStateError: if the run is not completed.
        DatasetError: if the dataset's classes differ from the run's.
        NotFoundError: if the run, its model or the dataset does not exist.
    """
    from tlcore.cache.images import split_arrays

    ws = ws or Workspace.from_env()
    run = open_run(run_id, ws, require_completed=require_completed)
    config = run.config
    name = check_dataset_name(dataset or config.dataset)
    classes = run.classes
    manifest = run.manifest(name)
    mapping = class_mapping(classes, list(manifest["classes"]), name)
    started = time.time()
    loaded = _ModelLoader(run, model)
    results: dict[str, Any] = {}
    for split in splits:
        if progress:
            progress()
        x, y = split_arrays(ws, manifest, split, config.image_size)
        y = mapping[y] if len(y) else y.astype(np.int32)
        files = [im["file"] for im in manifest["images"] if im["split"] == split]
        if probs is not None and split in probs:
            split_probs = probs[split]
        else:
            split_probs = (loaded.predict(x) if len(x) else np.zeros((0, len(classes))))
        if progress:
            progress()
        metrics = classification_metrics(y, split_probs, classes, k=k)
        metrics["mistakes"] = mistakes(y, split_probs, classes, files)
        metrics["samples"] = {
            "file": files,
            "true": [int(v) for v in y],
            "predicted": [int(v) for v in split_probs.argmax(axis=1)] if len(split_probs) else [],
            "confidence": ([round(float(v), 6) for v in split_probs.max(axis=1)]
                           if len(split_probs) else []),
        }
        results[split] = metrics
    evaluation = {
        "run_id": run_id,
        "dataset": name,
        "dataset_version": manifest["fingerprint"],
        "trained_on": config.dataset,
        "domain_shift": name != config.dataset,
        "classes": classes,
        "image_size": config.image_size,
        "created": time.time(),
        "eval_seconds": 0.0,
        "splits": results,
    }
    stamp = (_overlay_mistakes(evaluation, ws, manifest, loaded, gradcam_per_split, progress)
             if gradcam_per_split > 0 else None)
    evaluation["eval_seconds"] = round(time.time() - started, 3)
    _store(evaluation, ws, stamp)
    return evaluation


class _ModelLoader:
    """The run's model, loaded the first time something needs it."""

    def __init__(self, run: OpenedRun, model: Any = None) -> None:
        self.run, self._model = run, model

    def model(self) -> Any:
        if self._model is None:
            from tlcore.engine.runmodel import run_model

            self._model = run_model(self.run)
        return self._model

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of raw RGB images `x`."""
        from tlcore.engine.feed import predict_probs

        return predict_probs(self.model(), x)


def _overlay_mistakes(evaluation: dict[str, Any], ws: Workspace, manifest: dict[str, Any],
                      loaded: _ModelLoader, per_split: int,
                      progress: Callable[[], None] | None) -> str:
    """Grad-CAM overlays of each split's most confident mistakes; returns their folder's stamp.

    Each evaluation's overlays go to a folder of their own and the JSON names
    them, so a reader never pairs the JSON of one evaluation with overlays of
    another. Sets `gradcam` (path under `eval/`) on the chosen mistakes.
    """
    from tlcore.cache.images import split_arrays

    run_files = ws.run(evaluation["run_id"])
    stamp = f"{time.time_ns():x}"
    cam_dir = run_files.gradcam_dir(evaluation["dataset"]) / stamp
    cam_dir.mkdir(parents=True)
    for split, metrics in evaluation["splits"].items():
        chosen = metrics["mistakes"][:per_split]
        if not chosen:
            continue
        if progress:
            progress()
        x, _ = split_arrays(ws, manifest, split, evaluation["image_size"])
        images = np.asarray(x[[m["index"] for m in chosen]])
        for m, img, heat in zip(chosen, images, gradcam(loaded.model(), images), strict=True):
            png = f"{split}-{m['index']}.png"
            (cam_dir / png).write_bytes(png_bytes(overlay(img, heat)))
            m["gradcam"] = (cam_dir / png).relative_to(run_files.eval_dir).as_posix()
    return stamp


def _store(evaluation: dict[str, Any], ws: Workspace, stamp: str | None) -> None:
    """Write the evaluation JSON, then drop overlay folders of other evaluations."""
    run_files = ws.run(evaluation["run_id"])
    run_files.eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_files.evaluation(evaluation["dataset"]),
                      json.dumps(evaluation, ensure_ascii=False, allow_nan=False))
    cam_root = run_files.gradcam_dir(evaluation["dataset"])
    if cam_root.is_dir():
        for old in cam_root.iterdir():
            if old.name != stamp:
                shutil.rmtree(old, ignore_errors=True)


def add_gradcam(run_id: str, ws: Workspace | None = None, dataset: str | None = None,
                per_split: int = GRADCAM_PER_SPLIT, model: Any = None) -> dict[str, Any]:
    """Add Grad-CAM overlays to a run's stored evaluation (the worker's comes without).

    The worker stores its evaluation before it marks the run completed and adds
    the overlays right after, so a run is ready a moment sooner.

    Returns:
        The evaluation as stored again.

    Raises:
        NotFoundError: if the run has no stored evaluation on `dataset`.
    """
    ws = ws or Workspace.from_env()
    run = open_run(run_id, ws, require_completed=False)
    evaluation = load_evaluation(run_id, dataset or run.config.dataset, ws)
    if evaluation is None:
        raise NotFoundError(f"Run {run_id} has no stored evaluation on "
                            f"{dataset or 'its own dataset'}; run `python -m tlcore evaluate "
                            f"{run_id}` first.")
    started = time.time()
    manifest = (load_manifest(evaluation["dataset"], ws, evaluation["dataset_version"])
                if "dataset_version" in evaluation else run.manifest(evaluation["dataset"]))
    stamp = _overlay_mistakes(evaluation, ws, manifest, _ModelLoader(run, model), per_split,
                              None)
    evaluation["eval_seconds"] = round(evaluation["eval_seconds"] + time.time() - started, 3)
    _store(evaluation, ws, stamp)
    return evaluation


def load_evaluation(run_id: str, dataset: str | None = None,
                    ws: Workspace | None = None) -> dict[str, Any] | None:
    """The stored evaluation of a run on `dataset` (default its own), or None (no TensorFlow)."""
    ws = ws or Workspace.from_env()
    if dataset is None:
        dataset = RunStore(ws).get_run(run_id)["config"]["dataset"]
    path = ws.run(run_id).evaluation(dataset)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def list_evaluations(run_id: str, ws: Workspace | None = None) -> list[str]:
    """Names of the datasets a run has stored evaluations for, sorted."""
    ws = ws or Workspace.from_env()
    folder = ws.run(run_id).eval_dir
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def gradcam_path(run_id: str, mistake: dict[str, Any], ws: Workspace | None = None) -> Path | None:
    """File of a stored mistake's Grad-CAM overlay, or None when it has none."""
    rel = mistake.get("gradcam")
    if not rel:
        return None
    ws = ws or Workspace.from_env()
    path = ws.run(run_id).eval_dir / rel
    return path if path.is_file() else None


def summary(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per split: n, accuracy, k and top-k accuracy, macro F1, macro AUC."""
    return [{"split": split, "n": m["n"], "accuracy": m["accuracy"], "top_k": m["top_k"],
             "top_k_accuracy": m["top_k_accuracy"], "macro_f1": m["macro"]["f1"],
             "macro_auc": m["macro"]["auc"]}
            for split, m in evaluation["splits"].items()]
