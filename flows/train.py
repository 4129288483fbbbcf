"""Training one iteration from the trace store: SFT the policy on the iteration's correct traces (D+), refit
the value model on the run's step targets so far, and the ORM when enabled. The flywheel and ReST-EM flows
train this way, in their own process (`training.runner: local`) or as a run of the `train` deployment
(`deployment`: GPU workers sharing the work directory, where the run leaves its result as a JSON file).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from prefect import flow

from flows.config import FlywheelConfig
from models.prm import is_prm_spec
from tasks import resume
from tasks.train import fit_orm_task, fit_value_task, sft_policy_task


@dataclasses.dataclass
class Models:
    """The models an iteration starts from (and the base policy, for `sft_init: base`)."""

    base: str
    policy: str
    value: str
    orm: str | None = None


def fit_value(config: FlywheelConfig, run_id: str, iteration: int, init: str, out: str) -> dict:
    """The value model trained on the configured targets of the run's trees up to `iteration`."""
    return fit_value_task(str(config.paths["store"]), run_id, iteration, init, out, config.value_training,
                          config.value_targets, config.value_td_lambda, config.value_holdout, config.policy.device,
                          config.policy.dtype, config.value_model, config.policy.step_delimiter)


def train_iteration(config: FlywheelConfig, run_id: str, iteration: int, models: Models) -> tuple[Models, dict]:
    """Train iteration `iteration`'s models; returns them and, per model, (what it started from, what its
    training returned) (the ORM's is None when it is not enabled)."""
    store_path = str(config.paths["store"])
    out = config.paths["models"] / run_id
    recipe = config.tiny if config.policy.path is None else None
    init = models.base if config.sft_init == "base" else models.policy
    sft = sft_policy_task(store_path, run_id, iteration, init, str(out / f"policy-it{iteration}"), config.sft,
                          recipe, config.mix_demos, **config.sft_filter.model_dump(),
                          reference=None if recipe is not None else {
                              "task": config.task.name, "options": config.task.options,
                              "prompt_format": config.policy.prompt_format,
                              "system_prompt": config.policy.system_prompt,
                              "step_delimiter": config.policy.step_delimiter})
    fit = fit_value(config, run_id, iteration, models.value, str(out / f"value-it{iteration}"))
    # the ORM starts from the value model's backbone, or from the policy where the value model is a published PRM
    orm_init, orm = models.orm or (models.policy if is_prm_spec(models.value) else models.value), None
    if config.orm.enabled:
        orm = fit_orm_task(store_path, run_id, iteration, orm_init, str(out / f"orm-it{iteration}"),
                           config.orm.training, config.orm.pairs_per_tree)
    new_orm = orm["path"] if orm and orm["pairs"] else models.orm
    trained = Models(models.base, sft["path"], fit["path"], new_orm)
    return trained, {"policy": (init, sft), "value": (models.value, fit), "orm": (orm_init, orm)}


def result_file(config: FlywheelConfig, run_id: str, iteration: int) -> Path:
    """Where a `train` run leaves what it trained, for the flow that started it."""
    return config.paths["models"] / run_id / f"trained-it{iteration}.json"


@flow(name="train")
def train(config: FlywheelConfig, run_id: str, iteration: int, policy: str, value: str, orm: str | None = None,
          base: str | None = None, value_out: str | None = None) -> dict:
    """Train iteration `iteration` of run `run_id` from its trees in the store, starting from these models
    (`base`: the policy `sft_init: base` fine-tunes; default `policy`); with `value_out`, only the value
    model, from `value`, into `value_out` (the flywheel's first value model). Returns the new models' paths
    and, per model, what it started from and its training's figures; also written to `result_file`."""
    if value_out is not None:
        fit = fit_value(config, run_id, iteration, value, value_out)
        trained, done = Models(base or policy, policy, fit["path"], orm), {"value": (value, fit)}
    else:
        trained, done = train_iteration(config, run_id, iteration, Models(base or policy, policy, value, orm))
    out = {"models": dataclasses.asdict(trained), "trainings": {name: list(pair) for name, pair in done.items()}}
    path = result_file(config, run_id, iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    resume.write_json(path, out)
    return out


def train_remotely(config: FlywheelConfig, run_id: str, iteration: int, models: Models,
                   value_out: str | None = None) -> tuple[Models, dict]:
    """`train_iteration` (with `value_out`: the value model alone) as a run of the `training.deployment`
    deployment (e.g. on the GPU work pool); waits for it and reads back what it trained."""
    from prefect.deployments import run_deployment

    path = result_file(config, run_id, iteration)
    path.unlink(missing_ok=True)
    params = {"config": config.model_dump(mode="json"), "run_id": run_id, "iteration": iteration,
              "policy": models.policy, "value": models.value, "orm": models.orm, "base": models.base,
              "value_out": value_out}
    run = run_deployment(config.training.deployment, parameters=params, timeout=None, poll_interval=2)
    if not run.state.is_completed():
        raise RuntimeError(f"training of {run_id} iteration {iteration}: flow run '{run.name}' of "
                           f"{config.training.deployment} ended {run.state.type.value}: {run.state.message}")
    if not path.is_file():
        raise RuntimeError(f"training of {run_id} iteration {iteration}: {config.training.deployment} finished "
                           f"but {path} is not here; the workers must share this work directory")
    out = json.loads(path.read_text())
    return Models(**out["models"]), {name: tuple(pair) for name, pair in out["trainings"].items()}
