"""The flywheel's configuration: one pydantic model composed of each component's own settings.

Unknown keys are errors (with the path of the key), so a typo in a YAML config fails before any work.
This model is also the Prefect flow's parameter schema (the form in the Prefect UI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.tiny import TinyRecipe
from models.training import SFTSettings, ValueSettings
from search.bfs_v import BFSVConfig
from search.mcts_alpha import MCTSAlphaConfig


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSettings(_Strict):
    """Which problems: `options` go to the task's loader (e.g. arithmetic's n_ops, gsm8k's source)."""

    name: Literal["arithmetic", "game24", "gsm8k"] = "arithmetic"
    train_per_iteration: int = Field(256, ge=1, description="fresh training problems searched per iteration")
    test_size: int = Field(200, ge=1, description="test problems every method is evaluated on")
    options: dict = Field(default_factory=dict)


class PolicySettings(_Strict):
    """The policy: a model directory / hub id, or None for the built-in tiny model (bootstrapped, cached)."""

    path: str | None = None
    temperature: float = Field(0.7, ge=0.0)
    max_step_tokens: int = Field(24, ge=1)
    max_batch_rows: int = Field(512, ge=1)


class ValueBootstrap(_Strict):
    """The first value model: MC targets of sampled rollouts, backbone initialised from the policy."""

    path: str | None = None
    problems: int = Field(256, ge=1)
    rollouts: int = Field(8, ge=1)


class EvaluationSettings(_Strict):
    """Every method runs on the same test problems with the same per-problem generated-token budget."""

    methods: list[Literal["greedy", "self_consistency", "mcts_alpha", "bfs_v"]] = [
        "greedy", "self_consistency", "mcts_alpha"]
    later_methods: list[Literal["greedy", "self_consistency", "mcts_alpha", "bfs_v"]] | None = Field(
        None, description="methods evaluated after iterations 1.. (default: all of `methods`)")
    token_budget: int = Field(400, ge=1)
    max_samples: int = Field(8, ge=1, description="Self-Consistency pool size (truncated to the budget)")


class FlywheelConfig(_Strict):
    """One flywheel run: search -> store -> SFT policy -> retrain value -> evaluate, `iterations` times."""

    workdir: str = "work"
    cache_dir: str | None = Field(None, description="bootstrap cache (default: <workdir>/cache)")
    run_id: str | None = None
    iterations: int = Field(2, ge=0)
    seed: int = 0
    batch_size: int = Field(64, ge=1, description="trees searched in lockstep per batch")
    task: TaskSettings = TaskSettings()
    policy: PolicySettings = PolicySettings()
    tiny: TinyRecipe = TinyRecipe()
    value: ValueBootstrap = ValueBootstrap()
    search: MCTSAlphaConfig = MCTSAlphaConfig()
    bfs_v: BFSVConfig = BFSVConfig()
    evaluation: EvaluationSettings = EvaluationSettings()
    sft: SFTSettings = SFTSettings()
    mix_demos: int = Field(2000, ge=0, description="tiny policy only: original demonstrations mixed into SFT")
    value_targets: Literal["monte_carlo", "math_shepherd_hard"] = Field(
        "monte_carlo", description="step values the value model regresses on (value_paths view)")
    value_training: ValueSettings = ValueSettings(epochs=1.0, max_steps=150)

    @property
    def paths(self) -> dict[str, Path]:
        root = Path(self.workdir)
        return {"root": root, "store": root / "traces.duckdb", "models": root / "models",
                "shards": root / "shards", "mlflow": root / "mlflow.db", "artifacts": root / "mlartifacts",
                "cache": Path(self.cache_dir) if self.cache_dir else root / "cache"}


def load_config(path: str | Path, overrides: dict | None = None) -> FlywheelConfig:
    """Read and validate a YAML config; any problem raises `ConfigError` naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    data.update(overrides or {})
    try:
        return FlywheelConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path}: " + "; ".join(_describe(err) for err in e.errors())) from None


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown key '{where}'"
    return f"'{where}': {err['msg']}"
