"""Time left of a training run, from measured step times (no TensorFlow).

The first steps of a fit build and compile the graph (and XLA's clusters on a
GPU): on a small head they take longer than the rest of the epoch together. An
ETA from the mean time per step so far, or from the first epoch's duration,
counts that once-only cost again for every step and epoch still to come, and
starts several times too high. `StepClock` leaves the first `WARMUP_STEPS`
steps of a fit out, takes the median of the recent steps, and adds what each
epoch spends outside its training steps (validation, checkpoint), as measured.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence

WARMUP_STEPS = 3  # steps at the start of a fit that include tracing and compiling
RECENT_STEPS = 50  # the step time is the median of this many recent steps


def eta_seconds(step_seconds: Sequence[float], epoch_overheads: Sequence[float],
                steps_left: int, epochs_after: int, steps_per_epoch: int) -> float | None:
    """Seconds left: the rest of this epoch and `epochs_after` whole epochs.

    Args:
        step_seconds: Durations of recent steady training steps (no warm-up).
        epoch_overheads: Seconds each finished epoch spent after its last
            training step (validation, callbacks), oldest first. The first
            includes compiling the evaluation, so it counts only while it is
            the only one.
        steps_left: Training steps left in the current epoch.
        epochs_after: Whole epochs planned after the current one.
        steps_per_epoch: Training steps per epoch.

    Returns:
        The estimate, or None before any steady step was measured.
    """
    if not step_seconds:
        return None
    step = statistics.median(step_seconds)
    steady = epoch_overheads[1:] or epoch_overheads
    overhead = statistics.median(steady) if steady else 0.0
    return (max(steps_left, 0) * step + overhead
            + max(epochs_after, 0) * (steps_per_epoch * step + overhead))


class StepClock:
    """Times the steps and epochs of one fit and estimates the time left.

    Call `epoch_begin` when an epoch starts and `step_end` after each training
    step, with a monotonic clock's readings. The time between an epoch's last
    step and the next epoch's start is that epoch's overhead.

    Args:
        steps_per_epoch: Training steps per epoch.
        warmup: Steps at the start of the fit left out of the step time (at
            most all but one step of the first epoch, so short epochs get
            an estimate within the first).
        window: The step time is the median of this many recent steps.
    """

    def __init__(self, steps_per_epoch: int, warmup: int = WARMUP_STEPS,
                 window: int = RECENT_STEPS) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.warmup = min(warmup, max(1, steps_per_epoch - 1))
        self.steps_seen = 0
        self.recent: deque[float] = deque(maxlen=window)
        self.overheads: list[float] = []
        self._mark: float | None = None

    def epoch_begin(self, now: float) -> None:
        # From the last epoch's last step to now: its validation and every epoch-end
        # callback (metrics row, best model, checkpoint), whatever their order.
        if self._mark is not None:
            self.overheads.append(now - self._mark)
        self._mark = now

    def step_end(self, now: float) -> None:
        if self._mark is not None:
            self.steps_seen += 1
            if self.steps_seen > self.warmup:
                self.recent.append(now - self._mark)
        self._mark = now

    def eta(self, steps_done: int, epochs_after: int) -> float | None:
        """Seconds left after `steps_done` steps of this epoch and `epochs_after` more epochs.

        Returns:
            The estimate (see `eta_seconds`), or None while only warm-up steps ran.
        """
        return eta_seconds(list(self.recent), self.overheads, self.steps_per_epoch - steps_done,
                           epochs_after, self.steps_per_epoch)


class RateClock:
    """Time left of a count of items (images of the frozen-feature pass) at the measured rate.

    The first chunk includes tracing and compiling, so the rate is measured from
    the end of the first chunk on: `eta` is None until a second chunk is done.
    """

    def __init__(self) -> None:
        self._mark: tuple[float, int] | None = None

    def eta(self, now: float, done: int, total: int) -> float | None:
        """Seconds left after `done` of `total` items, read at monotonic time `now`.

        Returns:
            The estimate, or None before the rate could be measured.
        """
        if self._mark is None:
            if done > 0:
                self._mark = (now, done)
            return None
        since, first = self._mark
        if done <= first or now <= since:
            return None
        return max(total - done, 0) * (now - since) / (done - first)
