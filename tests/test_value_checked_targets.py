"""The calculator's cleaning of value targets (benchmarks/value_checked_targets.py) on noisy demonstrations."""

from __future__ import annotations

import random

from problems.arithmetic import generate, on_track, solution_steps


def test_targets_fall_to_minus_one_from_the_first_step_with_a_slip_and_stay_there(load_benchmark):
    bench = load_benchmark("value_checked_targets")
    rng = random.Random(3)
    slipped = 0
    for p in generate(200, split="demo"):
        steps = solution_steps(p, rng=rng, error_rate=0.5)
        targets = [0.25 * (d % 3) for d in range(len(steps))]  # any targets: the calculator only lowers them
        first_wrong = next((d for d in range(len(steps)) if not on_track(p, steps[: d + 1])), len(steps))
        slipped += first_wrong < len(steps)
        assert bench.checked(steps, targets) == targets[:first_wrong] + [-1.0] * (len(steps) - first_wrong)
    assert 60 < slipped < 140  # both kinds of path were checked
