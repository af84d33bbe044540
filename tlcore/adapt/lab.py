"""Adapt a completed run to a target dataset: features, shift, methods, choice, adapted run.

`adapt_run` is the whole lab in one call (the CLI's `adapt`, the Adapt page's
worker and `tlcore.adapt.adapt` run it):

1. open the source run and both datasets; the target's labels, when it has
   labels with the run's class names, are hidden from everything below and
   used only to score the result;
2. the base features of both datasets (`features.domain_features`, cached);
3. every method fitted on the source's train and validation rows (labels
   known) and all target rows (labels hidden), scored without labels
   (`methods.fit_methods`), and the best by the chosen scorer;
4. the shift between the domains (`shift.measure_shift`);
5. the chosen method folded into a Dense layer and saved as a run of its own
   (`adapted.save_run`), with its evaluation stored like a trained run's: on
   the source dataset's test and validation splits, and on the target's when
   it has labels.

TensorFlow is imported inside the steps that need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tlcore.adapt import adapted, features, methods, shift
from tlcore.data import load_manifest
from tlcore.engine.openrun import class_mapping, open_run
from tlcore.errors import DatasetError, RunStateError, TLCoreError
from tlcore.workspace import Workspace, check_dataset_name

# Steps reported to `progress(step, done, total)`.
STEPS = ("features", "methods", "shift", "saving")
Progress = Callable[[str, int, int], None]


def target_labels(run_classes: list[str], manifest: dict[str, Any]) -> np.ndarray | None:
    """How the target's labels map onto the run's classes, or None when they cannot score it.

    None for an unlabeled dataset and for one whose class names differ from the run's.
    """
    if manifest.get("labeled") is False:
        return None
    try:
        return class_mapping(run_classes, list(manifest["classes"]), manifest["name"])
    except DatasetError:
        return None


def adapt_run(run_id: str, target: str, *, method_names: list[str] | None = None,
              scorer: str = methods.DEFAULT_SCORER, seed: int = 0, name: str | None = None,
              owner: str | None = None, ws: Workspace | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Adapt completed run `run_id` to dataset `target`; returns the report.

    Args:
        run_id: A completed run (the source model).
        target: A dataset of the target domain, labeled or not; its labels never
            reach the methods or the choice.
        method_names: Methods to compare (`methods.METHODS`); "none" is always
            added. Default: all.
        scorer: The unsupervised scorer that chooses (`methods.SCORERS`).
        seed: Seed of every random step.
        name: The adapted run's name.
        owner: Who adapts; None: the local operator.
        ws: The workspace; default `Workspace.from_env()`.
        progress: Optional callback `(step, done, total)`, `step` one of `STEPS`.

    Returns:
        `{"source_run", "target", "labeled", "features", "scorer", "seed", "shift",
        "source_model", "methods": [{"name", "label", "score", "scores",
        "target_accuracy", "gain", "seconds"}], "chosen", "run_id", "seconds"}`;
        `target_accuracy` and `gain` (over no adaptation) are None without labels.

    Raises:
        NotFoundError: unknown run or dataset.
        RunStateError: the run is not completed, or was saved before light runs.
        ConfigError: unknown method or scorer.
    """
    began = time.monotonic()
    ws = ws or Workspace.from_env()
    names = methods.check_methods(method_names)
    methods.check_scorer(scorer)
    run = open_run(run_id, ws)
    if not run.files.trained.is_file():
        raise RunStateError(f"Run {run_id} was saved before light runs (a full model.keras) and "
                            "cannot be adapted; train it again.")
    target_manifest = load_manifest(check_dataset_name(target), ws)
    source_manifest = load_manifest(run.config.dataset, ws)
    classes = run.classes
    source_map = class_mapping(classes, list(source_manifest["classes"]),
                               source_manifest["name"])
    target_map = target_labels(classes, target_manifest)

    def report(step: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(step, done, total)) if progress else None

    src, tgt = features.domain_features(run, [source_manifest, target_manifest],
                                        report("features"))
    rows = src.splits != "test"
    xs, ys = src.pooled[rows], source_map[src.labels[rows]]
    xt = tgt.pooled
    yt = target_map[tgt.labels] if target_map is not None else None

    method_progress = report("methods")
    fitted = methods.fit_methods(
        names, xs, ys, xt, len(classes), seed,
        (lambda d, t, _name: method_progress(d, t)) if method_progress else None)
    chosen = methods.choose(fitted, scorer)
    if progress:
        progress("shift", 0, 1)
    baseline = next(f for f in fitted if f.name == "none")
    measured = shift.measure_shift(xs, ys, xt, baseline.probs.argmax(axis=1), classes, seed)
    if progress:
        progress("saving", 0, 1)
    kernel, bias = methods.fold(chosen, ys, xt, len(classes))
    source_model = features.source_probs(run, tgt.grid)

    def accuracy(probs: np.ndarray) -> float | None:
        return None if yt is None else float(np.mean(probs.argmax(axis=1) == yt))

    none_accuracy = accuracy(baseline.probs)
    rows_out = []
    for f in fitted:
        acc = accuracy(f.probs)
        rows_out.append({
            "name": f.name, "label": methods.METHODS[f.name][0], "score": f.scores.get(scorer),
            "scores": f.scores, "target_accuracy": acc,
            "gain": None if acc is None else acc - none_accuracy,
            "seconds": round(f.seconds, 2)})
    result = {
        "source_run": run_id, "target": target_manifest["name"], "labeled": yt is not None,
        "classes": classes, "n_source": len(xs), "n_target": len(xt),
        "features": features.POOLING, "scorer": scorer, "seed": seed, "shift": measured,
        "source_model": {"target_accuracy": accuracy(source_model)},
        "methods": rows_out, "chosen": chosen.name, "run_id": None,
    }
    result["seconds"] = round(time.monotonic() - began, 2)
    new_id = adapted.save_run(
        run, kernel, bias, result, name=name, owner=owner,
        test_metrics=_test_metrics(src, source_map, kernel, bias))
    result["run_id"] = new_id
    labeled = [(run.config.dataset, src)]
    if target_map is not None:
        labeled.append((target_manifest["name"], tgt))
    _store_evaluations(new_id, ws, labeled, kernel, bias)
    return result


def _probs(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    logits = x @ kernel + bias
    out = np.exp(logits - logits.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


def _test_metrics(src: features.DomainFeatures, source_map: np.ndarray, kernel: np.ndarray,
                  bias: np.ndarray) -> dict[str, float] | None:
    """The adapted model's loss and accuracy on the source test split (None when empty)."""
    rows = src.splits == "test"
    if not rows.any():
        return None
    probs, y = _probs(src.pooled[rows], kernel, bias), source_map[src.labels[rows]]
    picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return {"loss": float(-np.mean(np.log(picked))),
            "accuracy": float(np.mean(probs.argmax(axis=1) == y)), "n": int(len(y))}


def _store_evaluations(run_id: str, ws: Workspace, domains: list[tuple[str, Any]],
                       kernel: np.ndarray, bias: np.ndarray) -> None:
    """Store the adapted run's evaluations from the folded map, as training stores a run's.

    `domains` are `(dataset, DomainFeatures)` pairs with labels of the run's classes.
    A failure leaves that evaluation out (`python -m tlcore evaluate` redoes it); the
    run itself is complete.
    """
    from tlcore.results.evaluate import evaluate_run

    for dataset, domain in domains:
        probs = {s: _probs(domain.pooled[domain.splits == s], kernel, bias)
                 for s in ("test", "val")}
        try:
            evaluate_run(run_id, ws=ws, dataset=dataset, probs=probs, gradcam_per_split=0)
        except TLCoreError:
            continue
