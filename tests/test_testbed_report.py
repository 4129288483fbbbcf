"""The testbed benchmark's checks and picture, on figures shaped like a real run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.config import load_config

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def testbed(load_benchmark):
    return load_benchmark("testbed")


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "configs" / "testbed.yaml")


def _seed(mcts: float, curve: list[float], control: float, auc: float = 0.85) -> dict:
    figures = {"base/pass@n": 0.75, "base/maj@n": 0.3, "value_auc": auc}
    for method, acc in {"greedy": curve[0], "self_consistency": 0.2, "mcts_alpha": mcts, "bfs_v": 0.1}.items():
        figures[f"it0/{method}/accuracy"], figures[f"it0/{method}/tokens"] = acc, 150.0
    for i, acc in enumerate(curve[1:], start=1):
        figures[f"it{i}/greedy/accuracy"] = acc
        figures[f"control{i}/greedy/accuracy"] = control
    return figures


def _verdicts(testbed, config, per_seed) -> dict[str, bool]:
    stats = {key: testbed._stats([s[key] for s in per_seed]) for key in per_seed[0]}
    return {line[6:]: line.startswith("pass") for line in testbed._checks(stats, config)}


def test_checks_pass_when_every_target_is_met(testbed, config):
    per_seed = [_seed(0.40 + d, [0.30, 0.33 + d, 0.36 + d, 0.40 + d], control=0.31) for d in (0.0, 0.01, 0.02)]
    assert all(_verdicts(testbed, config, per_seed).values())


def test_checks_fail_on_a_margin_within_the_spread_and_a_stalled_curve(testbed, config):
    per_seed = [_seed(0.28 + d, [0.30, 0.30, 0.29, 0.31], control=0.35, auc=0.6) for d in (0.0, 0.05, 0.10)]
    verdicts = _verdicts(testbed, config, per_seed)
    failed = {name for name, ok in verdicts.items() if not ok}
    assert "value AUC >= 0.8" in failed
    assert any(name.startswith("mcts_alpha beats") for name in failed)
    assert "greedy rises every iteration (mean over seeds)" in failed
    assert "final greedy above the demos-only control by more than the spread" in failed
    assert verdicts["greedy in 15-60 %"] and verdicts["pass@16 >= greedy + 20 points"]


def test_the_picture_is_written(testbed, config, tmp_path):
    per_seed = [_seed(0.4, [0.3, 0.32, 0.34, 0.36], control=0.33) for _ in range(3)]
    path = Path(testbed._plot(per_seed, config, str(tmp_path / "t.png")))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
