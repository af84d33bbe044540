"""The ETA of a training run: measured steady steps, warm-up left out."""

from __future__ import annotations

import pytest

from tlcore.engine.eta import StepClock, eta_seconds

STEPS, EPOCHS = 20, 5
COMPILE_S, STEP_S = 4.0, 0.1  # the fit's first step compiles; every other step takes 0.1 s
FIRST_OVERHEAD_S, OVERHEAD_S = 1.5, 0.3  # validation (+ its compile in epoch 1), checkpoint


def _fit(clock: StepClock, until: tuple[int, int]) -> float:
    """Drive `clock` through a fit up to (epoch, steps done); returns the clock's time."""
    now = 0.0
    for epoch in range(EPOCHS):
        if epoch:
            now += FIRST_OVERHEAD_S if epoch == 1 else OVERHEAD_S
        clock.epoch_begin(now)
        for step in range(STEPS):
            now += COMPILE_S if epoch == step == 0 else STEP_S
            clock.step_end(now)
            if (epoch, step + 1) == until:
                return now
    raise AssertionError("until lies outside the fit")


def _true_remaining(epoch: int, done: int) -> float:
    overheads = [FIRST_OVERHEAD_S] + [OVERHEAD_S] * (EPOCHS - 1)
    return ((STEPS - done) * STEP_S + overheads[epoch]
            + sum(STEPS * STEP_S + overheads[e] for e in range(epoch + 1, EPOCHS)))


def test_first_estimate_leaves_the_compile_step_out():
    clock = StepClock(STEPS)
    _fit(clock, (0, 2))
    assert clock.eta(2, EPOCHS - 1) is None  # only warm-up steps so far: no guess
    clock = StepClock(STEPS)
    _fit(clock, (0, 6))
    eta = clock.eta(6, EPOCHS - 1)
    # Before any epoch ended the overhead is unknown; steps alone are exact here.
    assert eta == pytest.approx(_true_remaining(0, 6) - FIRST_OVERHEAD_S - 4 * OVERHEAD_S)
    # The mean time per step so far charges the compile again to every step still to come.
    mean_step = (COMPILE_S + 5 * STEP_S) / 6
    naive = (STEPS - 6) * mean_step + (EPOCHS - 1) * STEPS * mean_step
    assert naive > 5 * _true_remaining(0, 6)


def test_later_epochs_use_the_steady_overhead():
    clock = StepClock(STEPS)
    _fit(clock, (1, 10))
    assert clock.overheads == pytest.approx([FIRST_OVERHEAD_S])
    # Only the first (compiling) overhead is known: it stands for every epoch.
    assert clock.eta(10, EPOCHS - 2) == pytest.approx(
        10 * STEP_S + FIRST_OVERHEAD_S + 3 * (STEPS * STEP_S + FIRST_OVERHEAD_S))
    clock = StepClock(STEPS)
    _fit(clock, (3, 5))
    assert clock.eta(5, EPOCHS - 4) == pytest.approx(_true_remaining(3, 5))


def test_short_epochs_still_get_an_estimate_in_the_first_epoch():
    clock = StepClock(2)
    clock.epoch_begin(0.0)
    clock.step_end(5.0)
    clock.step_end(5.5)
    assert clock.eta(2, 3) == pytest.approx(3 * 2 * 0.5)


def test_eta_seconds_is_a_median_of_recent_steps():
    assert eta_seconds([], [], 10, 2, 10) is None
    # An outlier step (a retrace, a busy disk) does not move the median.
    assert eta_seconds([0.1, 0.1, 9.0], [], 10, 0, 10) == pytest.approx(1.0)
    assert eta_seconds([0.2], [5.0, 0.5, 0.7], 0, 2, 10) == pytest.approx(0.6 + 2 * 2.6)
    assert eta_seconds([0.2], [], -3, -1, 10) == 0.0
