"""Did transfer help? Compare a pretrained run with a from-scratch baseline.

Transfer is positive when starting from pretrained features (ImageNet, a
weights file, or the user's own earlier run via `run:<id>`) beats training the
same network from scratch on the same data, and negative when it does worse.
The matching baseline (`baseline_config`) trains every layer from random init
(`base.weights: none` with `base.trainable: true`) on the same data, image
size, head, batch size, augmentation and seed; only how it trains differs, at
rates and lengths suited to a network that starts from noise
(`config.SCRATCH_TRAIN`). Any other completed from-scratch run on the same
dataset may stand in for it (`baseline_candidates`, closest first); the report
then names every setting in which the two runs differ, the training budget
(epochs per phase) first, in its summary. A run with `weights: none` and a
frozen base (random features under a trained head) is not a baseline: it is
easily beaten by any pretrained start, so comparing with it would call nearly
every run a positive transfer.

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
* A summary never hides an unequal comparison: when the runs' training budgets
  (epochs of each phase) or any other setting differ, it says which, and when
  the baseline trained fewer epochs it says that this favours the pretrained run.
"""

from __future__ import annotations

from typing import Any

from tlcore.config import SCRATCH_TRAIN, FineTuneConfig, RunConfig, WeightsSource, field_spec
from tlcore.errors import ConfigError, RunStateError
from tlcore.store import COMPLETED, RunStore
from tlcore.workspace import Workspace

SCRATCH = "none"
DEFAULT_MARGIN = 0.01
POSITIVE, NEGATIVE, UNCLEAR = "positive transfer", "negative transfer", "no clear difference"
# How each run trains, which may differ between a pretrained run and its baseline;
# every other field (data, size, head, batch size, augmentation, seed) must match.
RECIPE_FIELDS = ("base.weights", "base.trainable", "train.optimizer", "train.learning_rate",
                 "train.epochs", "fine_tune.blocks", "fine_tune.epochs",
                 "fine_tune.learning_rate")
SCRATCH_LABEL = "trained from scratch (every layer, random init)"
# What makes one run pretrained and the other its baseline: never reported as a difference.
DEFINING_FIELDS = ("base.weights", "base.trainable")
# Epochs of each phase, reported together as one "training budget" row.
BUDGET_FIELDS = ("train.epochs", "fine_tune.epochs")
BUDGET = "training budget"
SAME_SETUP = "same data, image size, head and seed."


def _config(config: RunConfig | dict[str, Any]) -> RunConfig:
    return config if isinstance(config, RunConfig) else RunConfig.from_dict(config)


def _not_pretrained(config: RunConfig, what: str) -> ConfigError:
    """Why a run with weights none cannot stand for the pretrained side of a comparison."""
    if config.base.from_scratch:
        return ConfigError(f"{what} already trains from scratch (base.weights=none, "
                           "base.trainable=true); it is a baseline itself. Received: "
                           "base.weights='none'")
    return ConfigError(f"{what} keeps random features frozen (base.weights=none, "
                       "base.trainable=false): it is neither pretrained nor a from-scratch "
                       "baseline. Received: base.weights='none'")


def baseline_config(config: RunConfig | dict[str, Any]) -> RunConfig:
    """The from-scratch baseline of a pretrained run's config.

    Same dataset, image size, head, batch size, class weights, augmentation, seed
    and precision; the base starts from random init and trains with the head from
    the first epoch (`base.trainable`), with `config.SCRATCH_TRAIN`'s optimizer and
    learning rate, at least as many epochs as the pretrained run's two phases
    together (and at least `SCRATCH_TRAIN["epochs"]`), and no fine-tuning phase.

    Raises:
        ConfigError: if the config does not start from pretrained weights.
    """
    config = _config(config)
    if config.base.weights == SCRATCH:
        raise _not_pretrained(config, "This run")
    spent = config.train.epochs + (config.fine_tune.epochs if config.fine_tune.enabled else 0)
    epochs = min(max(SCRATCH_TRAIN["epochs"], spent), field_spec("train.epochs").upper)
    data = config.to_dict()
    data["base"] = {**data["base"], "weights": SCRATCH, "trainable": True}
    data["train"] = {**data["train"], **SCRATCH_TRAIN, "epochs": epochs}
    data["fine_tune"] = FineTuneConfig().model_dump(mode="json")
    return RunConfig.from_dict(data)


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


def pretrained_label(config: RunConfig | dict[str, Any]) -> str:
    """How a pretrained run starts and what it trains, in words.

    E.g. "ImageNet-pretrained (frozen base, head trained)".
    """
    config = _config(config)
    source = source_label(config.base.weights)
    start = "ImageNet-pretrained" if config.base.weights == "imagenet" else \
        f"Pretrained on {source}"
    if config.base.trainable:
        what = "every layer trained"
    elif config.fine_tune.enabled:
        blocks = config.fine_tune.blocks
        what = (f"frozen base, head trained, then the last {blocks} "
                f"block{'s' if blocks != 1 else ''} fine-tuned")
    else:
        what = "frozen base, head trained"
    return f"{start} ({what})"


def comparison(config: RunConfig | dict[str, Any],
               baseline: RunConfig | dict[str, Any] | None = None) -> str:
    """What a transfer report compares, in one line, for a pretrained run's config.

    Args:
        config: The pretrained run's config.
        baseline: The baseline's config; None: the matching baseline (`baseline_config`).
    """
    setup = SAME_SETUP
    if baseline is not None:
        other = list(config_differences(config, baseline))
        if other:
            setup = f"same dataset, but not the same {', '.join(other)}."
    return f"{pretrained_label(config)} vs {SCRATCH_LABEL}; {setup}"


def config_differences(a: RunConfig | dict[str, Any], b: RunConfig | dict[str, Any],
                       ignore: tuple[str, ...] = RECIPE_FIELDS) -> dict[str, tuple[Any, Any]]:
    """Flat config fields whose values differ: `{"head.dense": ([256], [128])}`."""
    fa, fb = _config(a).flat(), _config(b).flat()
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if k not in ignore and fa.get(k) != fb.get(k)}


def find_baseline(run_id: str, ws: Workspace | None = None,
                  statuses: tuple[str, ...] = (COMPLETED,)) -> str | None:
    """The newest run with the config `baseline_config` makes and one of `statuses`, else None.

    Returns None too when the run itself does not start from pretrained weights.
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


def budget_epochs(config: RunConfig | dict[str, Any]) -> tuple[int, int]:
    """Epochs of the first phase and of the fine-tuning phase (0 without one)."""
    config = _config(config)
    return config.train.epochs, config.fine_tune.epochs if config.fine_tune.enabled else 0


def budget_text(config: RunConfig | dict[str, Any]) -> str:
    """A run's training budget in words, e.g. "10 epochs + 4 fine-tuning epochs"."""
    first, second = budget_epochs(config)
    text = f"{first} epoch{'s' if first != 1 else ''}"
    return text + (f" + {second} fine-tuning epoch{'s' if second != 1 else ''}"
                   if second else "")


def run_differences(config: RunConfig | dict[str, Any],
                    baseline: RunConfig | dict[str, Any]) -> list[dict[str, Any]]:
    """Where a baseline differs from a pretrained run, besides being trained from scratch.

    Args:
        config: The pretrained run's config.
        baseline: The baseline's config.

    Returns:
        Rows of `setting`, `pretrained` and `baseline`: the training budget first
        (`BUDGET`, as `budget_text`) when the epochs of either phase differ, then
        every other config field that differs (dotted key, values as stored); the
        other fine-tuning fields only when either run fine-tunes.
    """
    config, baseline = _config(config), _config(baseline)
    rows = []
    if budget_epochs(config) != budget_epochs(baseline):
        rows.append({"setting": BUDGET, "pretrained": budget_text(config),
                     "baseline": budget_text(baseline)})
    tuned = config.fine_tune.enabled or baseline.fine_tune.enabled
    ignore = DEFINING_FIELDS + BUDGET_FIELDS + (
        () if tuned else ("fine_tune.blocks", "fine_tune.learning_rate"))
    rows += [{"setting": key, "pretrained": a, "baseline": b}
             for key, (a, b) in config_differences(config, baseline, ignore).items()]
    return rows


def value_text(value: Any) -> str:
    """A config value as reports write it: numbers in short form, lists as lists."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def differences_text(config: RunConfig | dict[str, Any],
                     baseline: RunConfig | dict[str, Any]) -> str:
    """The sentences a report adds when a comparison is not like for like ("" when it is).

    Unequal training budgets come first, with the remark that a baseline trained
    for fewer epochs favours the pretrained run; every other difference follows.
    """
    rows = run_differences(config, baseline)
    text = []
    if rows and rows[0]["setting"] == BUDGET:
        budget = rows.pop(0)
        text.append(f"Unequal training budgets: pretrained {budget['pretrained']}, baseline "
                    f"{budget['baseline']}.")
        if sum(budget_epochs(baseline)) < sum(budget_epochs(config)):
            text.append("The baseline trained for fewer epochs, which favours the pretrained "
                        "run.")
    if rows:
        text.append("The runs also differ in " + "; ".join(
            f"{r['setting']} ({value_text(r['pretrained'])} vs {value_text(r['baseline'])})"
            for r in rows) + ".")
    return " ".join(text)


def baseline_candidates(run_id: str, ws: Workspace | None = None) -> list[str]:
    """Completed from-scratch runs on a pretrained run's dataset, closest match first.

    The matching baseline (`baseline_config`) comes first; then runs that differ in
    fewer settings outside how they train (`RECIPE_FIELDS`), then in fewer settings
    at all (`run_differences`); newest first among equals.

    Args:
        run_id: The run with pretrained weights.
        ws: The workspace (default: from $TLCORE_HOME).

    Returns:
        Run ids; empty when there is none, or when the run does not start from
        pretrained weights.
    """
    store = RunStore(ws or Workspace.from_env())
    config = RunConfig.from_dict(store.get_run(run_id)["config"])
    if config.base.weights == SCRATCH:
        return []
    target = baseline_config(config).to_dict()
    ranked = []
    runs = reversed(store.list_runs(dataset=config.dataset, statuses=(COMPLETED,)))
    for age, run in enumerate(runs):
        try:
            other = RunConfig.from_dict(run["config"])
        except ConfigError:
            continue  # a config no longer valid cannot be compared setting by setting
        if run["id"] == run_id or not other.base.from_scratch:
            continue
        ranked.append((other.to_dict() != target, len(config_differences(config, other)),
                       len(run_differences(config, other)), age, run["id"]))
    return [r[-1] for r in sorted(ranked)]


def _val_curve(rows: list[dict[str, Any]]) -> dict[str, list]:
    rows = [r for r in rows if r.get("val_accuracy") is not None]
    return {"epoch": [r["epoch"] for r in rows], "val_accuracy": [r["val_accuracy"] for r in rows]}


def _test_accuracy(run: dict[str, Any], ws: Workspace) -> float | None:
    test = run.get("test_metrics") or {}
    if test.get("accuracy") is not None:
        return float(test["accuracy"])
    from tlcore.results.evaluate import load_evaluation

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
        baseline_run_id: A from-scratch run (`base.weights: none`,
            `base.trainable: true`) on the same dataset; the matching one
            (`find_baseline`) differs only in `RECIPE_FIELDS`.
        ws: The workspace (default: from $TLCORE_HOME).
        margin: Smallest accuracy difference that counts as a clear difference.

    Returns:
        `run_id`, `baseline_run_id`, `dataset`, `source` (the weights setting),
        `source_label`, `compared` (what was compared, one line), `budget`
        (`pretrained` and `baseline` as `budget_text`, and whether they are
        `equal`), `differences` (`run_differences`), `metrics` (rows of
        `metric`, `pretrained`, `baseline`, `delta`), `criterion`, `delta`,
        `margin`, `verdict`, `summary` (the verdict in a sentence, followed by
        `differences_text`) and `curves` (`pretrained` and `baseline`, each
        with `epoch` and `val_accuracy` lists).

    Raises:
        RunStateError: if either run is not completed.
        ConfigError: if the runs do not form a pretrained/baseline pair (the
            baseline does not train from scratch, or is on another dataset,
            naming the fields that differ).
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
        raise ConfigError(f"Run {run_id} does not start from pretrained weights, so there is no "
                          "transfer to report; pass the pretrained run first. Received: "
                          "base.weights='none'")
    if not base_cfg.base.from_scratch:
        raise ConfigError(
            f"The baseline run {baseline_run_id} must train from scratch (base.weights=none, "
            f"base.trainable=true). Received: base.weights={base_cfg.base.weights!r}, "
            f"base.trainable={str(base_cfg.base.trainable).lower()}")
    diff = config_differences(cfg, base_cfg)
    if "dataset" in diff:
        fields = "; ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in
                           ((k, *v) for k, v in diff.items()))
        raise ConfigError(f"Runs {run_id} and {baseline_run_id} are on different datasets "
                          f"({fields}); a baseline must train on the same data as the run.")

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
    caveat = differences_text(cfg, base_cfg)
    return {
        "run_id": run_id,
        "baseline_run_id": baseline_run_id,
        "dataset": cfg.dataset,
        "source": cfg.base.weights,
        "source_label": source_label(cfg.base.weights),
        "compared": comparison(cfg, base_cfg),
        "budget": {"pretrained": budget_text(cfg), "baseline": budget_text(base_cfg),
                   "equal": budget_epochs(cfg) == budget_epochs(base_cfg)},
        "differences": run_differences(cfg, base_cfg),
        "metrics": metrics,
        "criterion": criterion,
        "delta": delta,
        "margin": margin,
        "verdict": verdict,
        "summary": f"{sentence} {caveat}".strip(),
        "curves": curves,
    }
