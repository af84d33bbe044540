"""Did transfer help? Compare a pretrained run with a from-scratch baseline.

Transfer is positive when starting from pretrained features (ImageNet, a
weights file, or the user's own earlier run via `run:<id>`) beats training the
same network from random weights on the same data, and negative when it does
worse. The baseline is the same config with `base.weights: none`.

Everything here reads stored metrics; no TensorFlow.

How the report decides:

* Metrics compared (pretrained minus baseline): best val accuracy over all
  epochs; test accuracy (the trainer's stored test metrics, else a stored
  evaluation of the test split); and the area under the val-accuracy curve,
  taken as the mean val accuracy over the epochs both runs recorded (the area
  under the per-epoch step curve divided by the epoch count). Comparing over
  the common epochs keeps early stopping of one run from skewing it; a high
  value means the run got good early, which is what a pretrained start buys.
* The verdict uses test accuracy when both runs have it, else best val
  accuracy: "positive transfer" when the pretrained run is ahead by at least
  `margin` (default 0.01, one percentage point), "negative transfer" when it
  is behind by at least `margin`, and "no clear difference" in between,
  because a difference that small is within the noise of one training run.
"""

from __future__ import annotations

from typing import Any

from tlcore.config import RunConfig, WeightsSource
from tlcore.errors import ConfigError, RunStateError
from tlcore.store import COMPLETED, RunStore
from tlcore.workspace import Workspace

SCRATCH = "none"
DEFAULT_MARGIN = 0.01
POSITIVE, NEGATIVE, UNCLEAR = "positive transfer", "negative transfer", "no clear difference"


def _config(config: RunConfig | dict[str, Any]) -> RunConfig:
    return config if isinstance(config, RunConfig) else RunConfig.from_dict(config)


def baseline_config(config: RunConfig | dict[str, Any]) -> RunConfig:
    """The matching from-scratch config: the same config with `base.weights: none`.

    Raises:
        ConfigError: if the config already trains from scratch.
    """
    config = _config(config)
    if config.base.weights == SCRATCH:
        raise ConfigError("This run already trains from scratch (base.weights=none); it is a "
                          "baseline itself. Received: base.weights='none'")
    return config.with_overrides({"base.weights": SCRATCH})


def source_label(weights: str) -> str:
    """Where the pretrained features come from, in words."""
    if weights == "imagenet":
        return "ImageNet"
    source = WeightsSource.parse(weights)
    if source.kind == "run":
        return f"your run {source.run_id}"
    if weights == SCRATCH:
        return "random initialisation"
    return f"weights file {weights}"


def config_differences(a: RunConfig | dict[str, Any], b: RunConfig | dict[str, Any],
                       ignore: tuple[str, ...] = ("base.weights",)) -> dict[str, tuple[Any, Any]]:
    """Flat config fields whose values differ: `{"head.dense": ([256], [128])}`."""
    fa, fb = _config(a).flat(), _config(b).flat()
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if k not in ignore and fa.get(k) != fb.get(k)}


def find_baseline(run_id: str, ws: Workspace | None = None,
                  statuses: tuple[str, ...] = (COMPLETED,)) -> str | None:
    """The newest run with the matching baseline config and one of `statuses`, else None.

    Returns None too when the run itself trains from scratch.
    """
    store = RunStore(ws or Workspace.from_env())
    config = RunConfig.from_dict(store.get_run(run_id)["config"])
    if config.base.weights == SCRATCH:
        return None
    target = baseline_config(config).to_dict()
    for run in reversed(store.list_runs(dataset=config.dataset, statuses=statuses)):
        if run["id"] != run_id and RunConfig.from_dict(run["config"]).to_dict() == target:
            return run["id"]
    return None


def _val_curve(rows: list[dict[str, Any]]) -> dict[str, list]:
    rows = [r for r in rows if r.get("val_accuracy") is not None]
    return {"epoch": [r["epoch"] for r in rows], "val_accuracy": [r["val_accuracy"] for r in rows]}


def _test_accuracy(run: dict[str, Any], ws: Workspace) -> float | None:
    test = run.get("test_metrics") or {}
    if test.get("accuracy") is not None:
        return float(test["accuracy"])
    from tlcore.evaluate import load_evaluation

    evaluation = load_evaluation(run["id"], ws=ws)
    split = (evaluation or {}).get("splits", {}).get("test") or {}
    return split.get("accuracy")


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def transfer_report(run_id: str, baseline_run_id: str, ws: Workspace | None = None,
                    margin: float = DEFAULT_MARGIN) -> dict[str, Any]:
    """Compare a pretrained run with its from-scratch baseline (see the module docstring).

    Args:
        run_id: The run with pretrained weights (imagenet, a file or `run:<id>`).
        baseline_run_id: A run with the same config but `base.weights: none`.
        ws: The workspace (default: from $TLCORE_HOME).
        margin: Smallest accuracy difference that counts as a clear difference.

    Returns:
        `run_id`, `baseline_run_id`, `dataset`, `source` (the weights setting),
        `source_label`, `metrics` (rows of `metric`, `pretrained`, `baseline`,
        `delta`), `criterion`, `delta`, `margin`, `verdict`, `summary` (one
        sentence) and `curves` (`pretrained` and `baseline`, each with
        `epoch` and `val_accuracy` lists).

    Raises:
        RunStateError: if either run is not completed.
        ConfigError: if the runs do not form a pretrained/baseline pair,
            naming the fields that differ.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    run, base = store.get_run(run_id), store.get_run(baseline_run_id)
    for r in (run, base):
        if r["status"] != COMPLETED:
            raise RunStateError(f"Run {r['id']} is {r['status']}, not completed; a transfer report "
                                "needs both runs finished.")
    cfg, base_cfg = RunConfig.from_dict(run["config"]), RunConfig.from_dict(base["config"])
    if cfg.base.weights == SCRATCH:
        raise ConfigError(f"Run {run_id} trains from scratch, so there is no transfer to report; "
                          "pass the pretrained run first. Received: base.weights='none'")
    if base_cfg.base.weights != SCRATCH:
        raise ConfigError(f"The baseline run {baseline_run_id} must train from scratch "
                          f"(base.weights=none). Received: base.weights={base_cfg.base.weights!r}")
    diff = config_differences(cfg, base_cfg)
    if diff:
        fields = "; ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in
                           ((k, *v) for k, v in diff.items()))
        raise ConfigError(f"Runs {run_id} and {baseline_run_id} differ in more than base.weights "
                          f"({fields}); a baseline must match the run otherwise.")

    curves = {"pretrained": _val_curve(store.metrics(run_id)),
              "baseline": _val_curve(store.metrics(baseline_run_id))}
    curve, base_curve = curves["pretrained"]["val_accuracy"], curves["baseline"]["val_accuracy"]
    common = min(len(curve), len(base_curve))
    best = max(curve) if curve else run.get("best_val_accuracy")
    base_best = max(base_curve) if base_curve else base.get("best_val_accuracy")
    auc = sum(curve[:common]) / common if common else None
    base_auc = sum(base_curve[:common]) / common if common else None
    test, base_test = _test_accuracy(run, ws), _test_accuracy(base, ws)

    metrics = [
        {"metric": "test_accuracy", "pretrained": test, "baseline": base_test,
         "delta": _delta(test, base_test)},
        {"metric": "best_val_accuracy", "pretrained": best, "baseline": base_best,
         "delta": _delta(best, base_best)},
        {"metric": "val_accuracy_auc", "pretrained": auc, "baseline": base_auc,
         "delta": _delta(auc, base_auc)},
    ]
    criterion = "test_accuracy" if metrics[0]["delta"] is not None else "best_val_accuracy"
    delta = next(m["delta"] for m in metrics if m["metric"] == criterion)
    if delta is None:
        verdict = "not enough data"
        sentence = "Neither run has test or val accuracy recorded, so transfer cannot be judged."
    else:
        verdict = POSITIVE if delta >= margin else NEGATIVE if delta <= -margin else UNCLEAR
        what = criterion.replace("_", " ")
        if verdict == UNCLEAR:
            sentence = (f"Starting from {source_label(cfg.base.weights)} changed {what} by "
                        f"{delta * 100:+.1f} points, within the ±{margin * 100:.1f}-point margin.")
        else:
            sentence = (f"Starting from {source_label(cfg.base.weights)} "
                        f"{'raised' if delta > 0 else 'lowered'} {what} by "
                        f"{abs(delta) * 100:.1f} points over training from scratch.")
    return {
        "run_id": run_id,
        "baseline_run_id": baseline_run_id,
        "dataset": cfg.dataset,
        "source": cfg.base.weights,
        "source_label": source_label(cfg.base.weights),
        "metrics": metrics,
        "criterion": criterion,
        "delta": delta,
        "margin": margin,
        "verdict": verdict,
        "summary": sentence,
        "curves": curves,
    }
