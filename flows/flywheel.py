"""The flywheel flow: search -> store -> SFT the policy -> retrain the value -> evaluate, per iteration.

Iteration 0 evaluates the starting models; iteration i (1..N) searches fresh training problems with the
models of iteration i-1 (MCTS-alpha), stores the trees, fine-tunes the policy on the correct traces,
retrains the value model on the Monte Carlo targets, then evaluates every method on the same test
problems at the same token budget. Each iteration is an MLflow run nested under the flow's run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid

from prefect import flow, task
from prefect.cache_policies import NONE

from flows.config import FlywheelConfig, method_configs
from search.sampling import SamplingConfig
from tasks import tracking
from tasks.search import search_task
from tasks.store import ingest_task, record_run_task, summarize_task
from tasks.train import fit_value_task, sft_policy_task


@task(name="bootstrap-policy", cache_policy=NONE, persist_result=False)
def bootstrap_policy_task(config: FlywheelConfig) -> str:
    """The policy to start from: the configured directory, or the tiny model (trained once, cached)."""
    from models.errors import resolve_model
    from models.tiny import bootstrap, bootstrap_steps, cached
    from tasks.progress import bar

    if config.policy.path is not None:
        return resolve_model(config.policy.path)
    recipe = config.tiny
    if (hit := cached(recipe, config.paths["cache"])) is not None:
        return str(hit)
    with bar("bootstrap tiny policy", bootstrap_steps(recipe)) as update:
        return str(bootstrap(recipe, config.paths["cache"], progress=lambda s, _: update(s)))


def _search_kwargs(config: FlywheelConfig, run_id: str, policy: str, value: str | None) -> dict:
    return dict(task_name=config.task.name, task_options=config.task.options, policy_path=policy,
                value_path=value, temperature=config.policy.temperature, backend=config.policy.backend,
                device=config.policy.device,
                max_step_tokens=config.policy.max_step_tokens, max_batch_rows=config.policy.max_batch_rows,
                batch_size=config.batch_size, seed=config.seed, run_id=run_id)


def _shard(config: FlywheelConfig, run_id: str, iteration: int, stage: str, method: str) -> str:
    return str(config.paths["shards"] / run_id / f"it{iteration}-{stage}-{method}")


def _bootstrap_value(config: FlywheelConfig, run_id: str, policy: str) -> str:
    """The first value model: given, cached, or trained on MC targets of sampled rollouts."""
    if config.value.path is not None:
        from models.errors import resolve_model

        return resolve_model(config.value.path)
    key = hashlib.sha256(json.dumps([policy, config.value.model_dump(), config.task.model_dump(),
                                     repr(config.value_training), config.value_targets,
                                     config.policy.model_dump(exclude={"backend", "device"}), config.seed],
                                    sort_keys=True, default=str).encode()).hexdigest()[:12]
    out = config.paths["cache"] / f"value-{key}"
    if (out / "config.json").is_file():
        return str(out)
    sampling = SamplingConfig(n=config.value.rollouts, max_depth=config.search.max_depth)
    stats = search_task(**_search_kwargs(config, run_id, policy, None), split="train", start=0,
                        count=config.value.problems, method="self_consistency", method_config=sampling,
                        shard=_shard(config, run_id, 0, "bootstrap", "self_consistency"), iteration=0,
                        stage="bootstrap")
    ingest_task(str(config.paths["store"]), [stats["shard"]])
    return fit_value_task(str(config.paths["store"]), run_id, 0, policy, str(out), config.value_training,
                          config.value_targets)["path"]


def _evaluate(config: FlywheelConfig, run_id: str, iteration: int, policy: str, value: str) -> list[dict]:
    """Every method on the test problems at every budget with `config.seed`; one `evaluations` row per
    (method, budget)."""
    budgets = config.evaluation.budgets or [config.evaluation.token_budget]
    configs = method_configs(config)
    methods = config.evaluation.methods
    if iteration > 0 and config.evaluation.later_methods is not None:
        methods = config.evaluation.later_methods
    rows = []
    for method in methods:
        stats = search_task(**_search_kwargs(config, run_id, policy, value), split="test", start=0,
                            count=config.task.test_size, method=method, method_config=configs[method],
                            shard=_shard(config, run_id, iteration, f"eval-s{config.seed}", method),
                            iteration=iteration, stage="eval", budgets=budgets)
        ingest_task(str(config.paths["store"]), [stats["shard"]])
        for budget, costs in stats["costs"].items():
            rows.append(summarize_task(str(config.paths["store"]), run_id, iteration, method, "test", budget,
                                       costs["wall_seconds"], seed=config.seed, costs=costs))
    return rows


#: the evaluation figures logged to MLflow per method (and budget)
EVAL_METRICS = ("accuracy", "tokens_per_problem", "value_states_per_problem", "prefill_tokens_per_problem",
                "value_tokens_per_problem", "value_auc")


def metric_key(row: dict, budgets: list[int]) -> str:
    """MLflow metric prefix of an evaluation row: the method, with its budget when there are several."""
    return row["method"] if row["budget"] is None or len(budgets) == 1 else f"{row['method']}/b{row['budget']}"


@flow(name="flywheel")
def flywheel(config: FlywheelConfig) -> list[dict]:
    """Run the flywheel; returns one row per (iteration, method) with accuracy and tokens per problem."""
    import mlflow

    paths = config.paths
    paths["root"].mkdir(parents=True, exist_ok=True)
    run_id = config.run_id or f"flywheel-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    store_path = str(paths["store"])
    record_run_task(store_path, run_id, "flywheel", config.model_dump(mode="json"))
    experiment = tracking.setup(tracking.tracking_uri(paths["mlflow"]), paths["artifacts"])

    policy = bootstrap_policy_task(config)
    value = _bootstrap_value(config, run_id, policy)
    table: list[dict] = []
    with mlflow.start_run(experiment_id=experiment, run_name=run_id) as parent:
        mlflow.set_tags({"treeflow.run_id": run_id, "treeflow.kind": "flywheel"})
        mlflow.log_params({"task": config.task.name, "iterations": config.iterations, "seed": config.seed,
                           "token_budget": config.evaluation.token_budget, "policy": policy, "value": value})
        for iteration in range(config.iterations + 1):
            with mlflow.start_run(experiment_id=experiment, run_name=f"{run_id}/iteration-{iteration}",
                                  nested=True, parent_run_id=parent.info.run_id) as it_run:
                mlflow.log_params({"iteration": iteration, "trace_snapshot": f"{run_id}@{iteration}"})
                if iteration > 0:
                    policy, value = _iterate(config, run_id, iteration, policy, value, it_run.info.run_id)
                mlflow.log_params({"policy": policy, "value": value})
                budgets = config.evaluation.budgets or [config.evaluation.token_budget]
                rows = _evaluate(config, run_id, iteration, policy, value)
                for row in rows:
                    table.append(row)
                    key = metric_key(row, budgets)
                    tracking.log_metrics(it_run.info.run_id, {f"{key}/{name}": row[name] for name in EVAL_METRICS})
                    tracking.log_metrics(parent.info.run_id, {f"{key}/accuracy": row["accuracy"]}, step=iteration)
                if config.registry.enabled and iteration > 0:
                    _register(config, run_id, iteration, policy, value, table, it_run.info.run_id)
    return table


def _gate_value(table: list[dict], iteration: int, metric: str) -> float | None:
    method, _, field = metric.partition("/")
    return next((r[field] for r in table if r["iteration"] == iteration and r["method"] == method), None)


@task(name="register-models", cache_policy=NONE, persist_result=False)
def _register(config: FlywheelConfig, run_id: str, iteration: int, policy: str, value: str, table: list[dict],
              mlflow_run: str) -> bool:
    """Register this iteration's models (`candidate`); move `champion` to them if the gate passes."""
    from tasks import registry

    versions = {}
    for name, path, kind in ((registry.POLICY, policy, "policy"), (registry.VALUE, value, "value")):
        tags = {"treeflow.run_id": run_id, "treeflow.iteration": str(iteration),
                "treeflow.snapshot": f"{run_id}/{iteration}/{kind}"}
        versions[name] = registry.register(path, name, tags, mlflow_run)
    metric = _gate_value(table, iteration, config.registry.gate_metric)
    reference = registry.champion_value(registry.POLICY)
    if reference is None:
        reference = _gate_value(table, 0, config.registry.gate_metric)
    promoted = metric is not None and reference is not None and registry.promote(
        versions, metric, reference, config.registry.margin)
    tracking.log_metrics(mlflow_run, {"registry/promoted": float(promoted), "registry/gate_value": metric,
                                      "registry/gate_reference": reference})
    return promoted


def _iterate(config: FlywheelConfig, run_id: str, iteration: int, policy: str, value: str,
             mlflow_run: str) -> tuple[str, str]:
    """One flywheel iteration: search the training slice, store, SFT the policy, retrain the value."""
    store_path = str(config.paths["store"])
    start = config.value.problems + (iteration - 1) * config.task.train_per_iteration
    stats = search_task(**_search_kwargs(config, run_id, policy, value), split="train", start=start,
                        count=config.task.train_per_iteration, method="mcts_alpha", method_config=config.search,
                        shard=_shard(config, run_id, iteration, "search", "mcts_alpha"), iteration=iteration,
                        stage="search")
    added = ingest_task(store_path, [stats["shard"]])
    models = config.paths["models"] / run_id
    recipe = config.tiny if config.policy.path is None else None
    sft = sft_policy_task(store_path, run_id, iteration, policy, str(models / f"policy-it{iteration}"), config.sft,
                          recipe, config.mix_demos)
    fit = fit_value_task(store_path, run_id, iteration, value, str(models / f"value-it{iteration}"),
                         config.value_training, config.value_targets)
    tracking.log_metrics(mlflow_run, {"search/trees": added, "search/generated_tokens": stats["generated_tokens"],
                                      "sft/traces": sft["traces"], "sft/train_loss": sft["train_loss"],
                                      "value/targets": fit["targets"], "value/train_loss": fit["train_loss"]})
    tracking.log_curve(mlflow_run, "sft/loss", sft["losses"])
    tracking.log_curve(mlflow_run, "value/loss", fit["losses"])
    name = f"{run_id}/iteration-{iteration}"
    tracking.log_training(mlflow_run, f"{name}/sft", {
        "model": "policy", "trace_snapshot": f"{run_id}/{iteration}/policy", "view": "sft_traces",
        "init": policy, "output": sft["path"], "mixed_demonstrations": sft["demos"],
        **{f"sft.{k}": v for k, v in dataclasses.asdict(config.sft).items()}},
        {"train_loss": sft["train_loss"], "rows": sft["traces"], "steps": sft["steps"]}, sft["losses"])
    tracking.log_training(mlflow_run, f"{name}/value", {
        "model": "value", "trace_snapshot": f"{run_id}/{iteration}/value", "view": "value_paths",
        "target_method": config.value_targets, "init": value, "output": fit["path"],
        **{f"value.{k}": v for k, v in dataclasses.asdict(config.value_training).items()}},
        {"train_loss": fit["train_loss"], "rows": fit["targets"], "steps": fit["steps"]}, fit["losses"])
    return sft["path"], fit["path"]


def summary_rows(table: list[dict]) -> list[dict]:
    """The table sorted by iteration then method (for printing)."""
    return sorted(table, key=lambda r: (r["iteration"], r["method"]))

