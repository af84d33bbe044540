"""Domain adaptation lab: a completed run adapted to a target domain whose labels are unknown.

* `shift`: how far the target lies from the source (proxy A-distance, MMD),
  overall and per class, in plain words.
* `methods`: no adaptation, reweighting, CORAL, optimal transport, subspace
  alignment and TCA on the run's base features (skada pipelines with a logistic
  regression), their unsupervised scores, the choice, and the fold into one
  Dense layer.
* `features`: the run's pooled base features through the frozen-feature cache.
* `adapted`: the chosen adaptation saved as a light run of its own, and its report.
* `lab`: the whole lab in one call (`adapt_run`); `jobs`: the same in a
  background process for the dashboard (`tlcore.workers.adapt`).

`adapt(...)` is the Python API. Importing this package imports neither
TensorFlow nor skada: the dashboard imports `jobs` and `adapted`.
"""

from __future__ import annotations

from typing import Any


def adapt(run_id: str, target: str, *, methods: list[str] | None = None,
          scorer: str | None = None, seed: int = 0, name: str | None = None,
          ws: Any = None) -> dict[str, Any]:
    """Adapt completed run `run_id` to dataset `target` and save the adapted run.

    Args:
        run_id: A completed run.
        target: A dataset of the target domain (unlabeled, or labeled: its labels
            are then hidden from the adaptation and used only to score it).
        methods: Methods to compare (see `tlcore.adapt.methods.METHODS`); default all.
        scorer: The unsupervised scorer that chooses; default
            `tlcore.adapt.methods.DEFAULT_SCORER`.
        seed: Seed of every random step.
        name: The adapted run's name.
        ws: A `tlcore.workspace.Workspace`; default from $TLCORE_HOME.

    Returns:
        The report (see `tlcore.adapt.lab.adapt_run`): `shift`, `methods`, `chosen`,
        `run_id` of the adapted run, ...

    Raises:
        NotFoundError, RunStateError, ConfigError: as `adapt_run`.
    """
    from tlcore.adapt.lab import adapt_run
    from tlcore.adapt.methods import DEFAULT_SCORER

    return adapt_run(run_id, target, method_names=methods, scorer=scorer or DEFAULT_SCORER,
                     seed=seed, name=name, ws=ws)
