"""The flywheel flow, and the ReST-EM baseline that differs from it only in how it generates.

Iteration 0 evaluates the starting models; iteration i (1..N) generates on fresh training problems with
the models of iteration i-1, stores the trees, fine-tunes the policy on the correct traces (D+),
retrains the value model (and the ORM, when enabled) on the store's step targets, then evaluates every
method on the same test problems at the same token budget. The flywheel generates by a value-guided tree
search (`training_search`: MCTS-alpha or BFS-V); ReST-EM samples k solutions per problem under the same
per-problem token cap. Each iteration is an MLflow run nested under the flow's run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NONE

from flows.config import FlywheelConfig, method_configs
from flows.train import Models, fit_value, train_iteration, train_remotely
from models.training import settings_repr
from search.sampling import SamplingConfig
from storage.datasets import value_view
from tasks import resume, tracking
from tasks.store import record_run_task, summarize_task
from tasks.train import held_out_sql, value_metrics

GENERATORS = ("search", "rest_em")  # the flywheel generates by tree search, ReST-EM by sampling


@task(name="bootstrap-policy", cache_policy=NONE, persist_result=False)
def bootstrap_policy_task(config: FlywheelConfig) -> str:
    """The policy to start from: the configured directory, or the tiny model (shipped or trained once, cached)."""
    from models.errors import resolve_model
    from models.tiny import bootstrap, bootstrap_steps, cached, shipped
    from tasks.progress import bar

    if config.policy.path is not None:
        return resolve_model(config.policy.path)
    recipe = config.tiny
    if (hit := cached(recipe, config.paths["cache"])) is not None:
        return str(hit)
    if shipped(recipe) is not None:  # verified and copied into the cache
        return str(bootstrap(recipe, config.paths["cache"]))
    with bar("bootstrap tiny policy", bootstrap_steps(recipe)) as update:
        return str(bootstrap(recipe, config.paths["cache"], progress=lambda s, _: update(s)))


def search_kwargs(config: FlywheelConfig, run_id: str, policy: str, value: str | None) -> dict:
    """The arguments of `tasks.search.run_search` that come from the config and the models; the caller adds what
    to search (split, slice, method and its config, iteration, stage, budgets) and where its shard goes."""
    return dict(task_name=config.task.name, task_options=config.task.options, policy_path=policy,
                value_path=value, temperature=config.policy.temperature, backend=config.policy.backend,
                device=config.policy.device, dtype=config.policy.dtype,
                max_step_tokens=config.policy.max_step_tokens, max_batch_rows=config.policy.max_batch_rows,
                batch_size=config.batch_size, seed=config.seed, run_id=run_id, calculator=config.calculator,
                step_delimiter=config.policy.step_delimiter, prompt_format=config.policy.prompt_format,
                system_prompt=config.policy.system_prompt,
                gpu_memory_utilization=config.policy.gpu_memory_utilization)


def _shard(config: FlywheelConfig, run_id: str, iteration: int, stage: str, method: str) -> str:
    return str(config.paths["shards"] / run_id / f"it{iteration}-{stage}-{method}")


#: how the bootstrap rollouts are sampled, in the value cache's key: a path is decoded in one go
#: (`TransformersPolicy.propose_paths`), which draws other samples from the same seed than step by step does
_ROLLOUTS = "paths-in-one-go"
#: policy settings that leave the cached value model's key alone
_HOW_IT_RUNS = {"backend", "device", "dtype", "gpu_memory_utilization"}
#: policy settings that joined the key later: at their defaults they leave it as it was
_LATER = {"step_delimiter": "\n", "prompt_format": "plain"}


def _policy_key(config: FlywheelConfig) -> dict:
    out = config.policy.model_dump(exclude=_HOW_IT_RUNS)
    for name, default in _LATER.items():
        if out[name] == default:
            del out[name]
    if "prompt_format" not in out:  # the system prompt only matters to chat prompts
        del out["system_prompt"]
    return out


def bootstrap_value_dir(config: FlywheelConfig, policy: str) -> Path:
    """Where the first value model of a run from `policy` is cached: a hash of everything it is trained from
    (the policy, the value settings and targets, the task, the seed, the held-out split)."""
    value = config.value.model_dump(exclude={"init"} if config.value.init is None else set())  # unset: old keys
    key = hashlib.sha256(json.dumps([policy, value, config.task.model_dump(),
                                     settings_repr(config.value_training), config.value_targets,
                                     config.value_td_lambda,
                                     config.value_holdout, _policy_key(config),
                                     config.seed, held_out_sql(),  # the split too: another split, another model
                                     *([config.value_model] if config.value_model != "head" else []),
                                     _ROLLOUTS],
                                    sort_keys=True, default=str).encode()).hexdigest()[:12]
    return config.paths["cache"] / f"value-{key}"


def _bootstrap_value(config: FlywheelConfig, run_id: str, policy: str) -> str:
    """The first value model: given, cached, or trained from `value.init` (default: the policy) on the
    configured targets of the policy's sampled rollouts."""
    from models.errors import resolve_model
    from models.prm import is_prm_spec, parse_spec

    if config.value.path is not None and is_prm_spec(config.value.path):  # a published PRM, used as it is
        resolve_model(parse_spec(config.value.path).model)  # a missing model fails here, before any search
        return config.value.path
    if config.value.path is not None:
        return resolve_model(config.value.path)
    init = policy if config.value.init is None else resolve_model(config.value.init)
    out = bootstrap_value_dir(config, policy)
    # the rollouts go into the run's store even when the model they train is cached: every later value refit
    # trains on them too, so a run's store, and every figure after iteration 0, is the same either way
    sampling = SamplingConfig(n=config.value.rollouts, max_depth=config.search.max_depth)
    kwargs = dict(**search_kwargs(config, run_id, policy, None), split="train", method="self_consistency",
                  method_config=sampling, iteration=0, stage="bootstrap")
    _fan_out(config, kwargs, 0, config.value.problems, _shard(config, run_id, 0, "bootstrap", "self_consistency"))
    if (out / resume.MARKER).is_file():  # trained to the end (a killed training leaves no marker)
        return str(out)
    if config.training.runner == "deployment":  # on the training workers, as every other training
        _, done = train_remotely(config, run_id, 0, Models(policy, policy, init), value_out=str(out))
        return done["value"][1]["path"]
    return fit_value(config, run_id, 0, init, str(out))["path"]


def _evaluate(config: FlywheelConfig, run_id: str, iteration: int, policy: str, value: str,
              orm: str | None = None) -> list[dict]:
    """Every method on the test problems at every budget with `config.seed`; one `evaluations` row per
    (method, budget). Best-of-N ORM reads the `orm` model when there is one, else the value model."""
    budgets = config.evaluation.budgets or [config.evaluation.token_budget]
    configs = method_configs(config)
    methods = config.evaluation.methods
    if iteration > 0 and config.evaluation.later_methods is not None:
        methods = config.evaluation.later_methods
    rows = []
    for method in methods:
        verifier = orm if method == "best_of_n_orm" and orm else value
        kwargs = dict(**search_kwargs(config, run_id, policy, verifier), split="test", method=method,
                      method_config=configs[method], iteration=iteration, stage="eval", budgets=budgets)
        stats = _fan_out(config, kwargs, 0, config.test_size(method),
                         _shard(config, run_id, iteration, f"eval-s{config.seed}", method))
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
def flywheel(config: FlywheelConfig) -> dict:
    """Run the search flywheel (the tree search `training_search` names generates the training traces).

    Returns `{"run_id", "evaluations": one row per (iteration, method, budget), "iterations": one row per
    iteration with its training figures}`.
    """
    return _run(config, "search")


@flow(name="rest-em")
def rest_em(config: FlywheelConfig) -> dict:
    """Run the ReST-EM baseline: as the flywheel, but sampling `rest_em.samples` solutions per training
    problem (cut to the same token cap) instead of searching. Returns what `flywheel` returns."""
    return _run(config, "rest_em")


def _run(config: FlywheelConfig, generator: str) -> dict:
    import mlflow

    kind = "flywheel" if generator == "search" else "rest_em"
    paths = config.paths
    paths["root"].mkdir(parents=True, exist_ok=True)
    run_id = config.run_id or f"{kind.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    store_path = str(paths["store"])
    record_run_task(store_path, run_id, kind, config.model_dump(mode="json"))
    experiment = tracking.setup(tracking.tracking_uri(paths["mlflow"]), paths["artifacts"])

    policy = bootstrap_policy_task(config)
    models = Models(base=policy, policy=policy, value=_bootstrap_value(config, run_id, policy))
    table: list[dict] = []
    iterations: list[dict] = [{"iteration": 0, "generated_tokens_per_problem": None, "traces": None,
                               **_value_figures(value_metrics(models.value))}]
    # a run restarted with the same run id logs into the MLflow runs it began; iterations it finished are not
    # logged again, and their work (shards, models) is found complete on disk (`tasks.resume`)
    with tracking.resumable_run(experiment, run_id) as (parent, _):
        mlflow.set_tags({"treeflow.run_id": run_id, "treeflow.kind": kind})
        mlflow.log_params({"task": config.task.name, "iterations": config.iterations, "seed": config.seed,
                           "generator": training_generator(config, generator)[0],
                           "token_budget": config.evaluation.token_budget,
                           "policy": policy, "value": models.value})
        for iteration in range(config.iterations + 1):
            with tracking.resumable_run(experiment, f"{run_id}/iteration-{iteration}",
                                        parent.info.run_id) as (it_run, logged):
                mlflow.log_params({"iteration": iteration, "trace_snapshot": f"{run_id}@{iteration}"})
                if iteration > 0:
                    models, summary = _iterate(config, run_id, iteration, models, it_run.info.run_id, generator,
                                               log=not logged)
                    iterations.append(summary)
                mlflow.log_params({"policy": models.policy, "value": models.value, "orm": models.orm})
                budgets = config.evaluation.budgets or [config.evaluation.token_budget]
                rows = _evaluate(config, run_id, iteration, models.policy, models.value, models.orm)
                table.extend(rows)
                if logged:
                    continue
                for row in rows:
                    key = metric_key(row, budgets)
                    tracking.log_metrics(it_run.info.run_id, {f"{key}/{name}": row[name] for name in EVAL_METRICS})
                    tracking.log_metrics(parent.info.run_id, {f"{key}/accuracy": row["accuracy"]}, step=iteration)
                tracking.log_metrics(parent.info.run_id,
                                     {"value/heldout_auc": iterations[-1]["value_heldout_auc"],
                                      "value/heldout_sibling_auc": iterations[-1]["value_heldout_sibling_auc"]},
                                     step=iteration)
                if config.registry.enabled and iteration > 0:
                    _register(config, run_id, iteration, models, table, it_run.info.run_id)
    return {"run_id": run_id, "evaluations": table, "iterations": iterations}


def _value_figures(metrics: dict) -> dict:
    return {"value_heldout_auc": metrics.get("heldout_auc"), "value_heldout_mse": metrics.get("heldout_mse"),
            "value_heldout_sibling_auc": metrics.get("heldout_sibling_auc")}


def _gate_value(table: list[dict], iteration: int, metric: str) -> float | None:
    method, _, field = metric.partition("/")
    return next((r[field] for r in table if r["iteration"] == iteration and r["method"] == method), None)


@task(name="register-models", cache_policy=NONE, persist_result=False)
def _register(config: FlywheelConfig, run_id: str, iteration: int, models: Models, table: list[dict],
              mlflow_run: str) -> bool:
    """Register this iteration's models (`candidate`); move `champion` to them if the gate passes."""
    from models.prm import is_prm_spec
    from tasks import registry

    versions = {}
    trained = [(registry.POLICY, models.policy, "policy"), (registry.VALUE, models.value, "value")]
    if models.orm is not None:
        trained.append((registry.ORM, models.orm, "orm"))
    for name, path, kind in trained:
        if is_prm_spec(path):  # a published PRM is not this run's to register
            continue
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


def training_generator(config: FlywheelConfig, generator: str) -> tuple[str, object, list[int] | None]:
    """(search method, its config, budgets) that generate a flow's training trees: the flywheel's tree search
    (`training_search`, capped at `search.token_budget`), or `rest_em.samples` samples per problem under the same
    cap (ReST-EM)."""
    if generator == "search":
        method, settings = config.training_search.method, config.training_search.settings
        base = config.search if method == "mcts_alpha" else dataclasses.replace(
            config.bfs_v, max_depth=config.search.max_depth, token_budget=config.search.token_budget)
        return method, dataclasses.replace(base, **settings), None
    sampling = SamplingConfig(n=config.rest_em.samples, max_depth=config.search.max_depth)
    return "self_consistency", sampling, [config.rest_em.token_budget or config.search.token_budget
                                          or config.evaluation.token_budget]


def _generate(config: FlywheelConfig, run_id: str, iteration: int, models: Models, generator: str) -> dict:
    """This iteration's training trees, fanned out over shards and ingested: the flywheel's tree search or k
    samples per problem under the same token cap (ReST-EM)."""
    method, method_config, budgets = training_generator(config, generator)
    kwargs = dict(**search_kwargs(config, run_id, models.policy, models.value), split="train", method=method,
                  method_config=method_config, budgets=budgets, iteration=iteration, stage="search")
    return _fan_out(config, kwargs, config.value.problems + (iteration - 1) * config.task.train_per_iteration,
                    config.task.train_per_iteration,
                    _shard(config, run_id, iteration, "search", method if generator == "search" else generator))


def _fan_out(config: FlywheelConfig, kwargs: dict, start: int, count: int, shard: str) -> dict:
    """Search problems [start, start + count) as `config.generation` says (shards, runner) and ingest them."""
    from flows.generate import fan_out

    g = config.generation
    return fan_out(kwargs, start=start, count=count, shard=shard, shard_size=g.shard_size,
                   parallelism=g.parallelism, store_path=str(config.paths["store"]), runner=g.runner,
                   deployment=g.deployment, ray_address=g.ray_address)


def _iterate(config: FlywheelConfig, run_id: str, iteration: int, models: Models, mlflow_run: str,
             generator: str, log: bool = True) -> tuple[Models, dict]:
    """One iteration: generate on the training slice, store, SFT the policy, retrain the value (and ORM).
    `log`: log its figures and trainings to MLflow (False when a restarted run already had)."""
    stats = _generate(config, run_id, iteration, models, generator)
    trainer = train_iteration if config.training.runner == "local" else train_remotely
    new, done = trainer(config, run_id, iteration, models)
    sft, fit, orm = (done[name][1] for name in ("policy", "value", "orm"))
    per_problem = stats["generated_tokens"] / config.task.train_per_iteration
    summary = {"iteration": iteration, "generated_tokens_per_problem": per_problem, "traces": sft["traces"],
               **_value_figures(fit)}
    if not log:
        return new, summary
    tracking.log_metrics(mlflow_run, {
        "search/trees": stats["trees"], "search/new_trees": stats["added"],
        "search/generated_tokens": stats["generated_tokens"],
        "search/generated_tokens_per_problem": per_problem, "sft/traces": sft["traces"],
        "sft/train_loss": sft["train_loss"], "value/targets": fit["targets"],
        "value/train_loss": fit["train_loss"], "value/heldout_mse": fit["heldout_mse"],
        "value/heldout_auc": fit["heldout_auc"], "value/heldout_sibling_auc": fit.get("heldout_sibling_auc"),
        **({"orm/pairs": orm["pairs"], "orm/train_loss": orm["train_loss"]} if orm else {})})
    _log_trainings(config, f"{run_id}/iteration-{iteration}", mlflow_run, generator, done)
    return new, summary


def _log_trainings(config: FlywheelConfig, name: str, mlflow_run: str, generator: str, done: dict) -> None:
    """Each training of the iteration as its own MLflow run: its snapshot, view, settings, loss curve."""
    snapshot = name.replace("/iteration-", "/")
    (init, sft), (value_init, fit), (orm_init, orm) = done["policy"], done["value"], done["orm"]
    tracking.log_curve(mlflow_run, "sft/loss", sft["losses"])
    tracking.log_curve(mlflow_run, "value/loss", fit["losses"])
    tracking.log_training(mlflow_run, f"{name}/sft", {
        "model": "policy", "trace_snapshot": f"{snapshot}/policy", "view": "sft_traces",
        "generator": training_generator(config, generator)[0],
        "init": init, "output": sft["path"], "mixed_demonstrations": sft["demos"],
        **{f"sft.{k}": v for k, v in dataclasses.asdict(config.sft).items()}},
        {"train_loss": sft["train_loss"], "rows": sft["traces"], "steps": sft["steps"]}, sft["losses"])
    tracking.log_training(mlflow_run, f"{name}/value", {
        "model": "value", "trace_snapshot": f"{snapshot}/value", "view": value_view(config.value_targets),
        "target_method": config.value_targets, "td_lambda": config.value_td_lambda,
        "holdout": config.value_holdout, "init": value_init, "output": fit["path"],
        "value_model": config.value_model, **{f"value.{k}": v for k, v in fit["settings"].items()}},
        {"train_loss": fit["train_loss"], "rows": fit["targets"], "steps": fit["steps"],
         "heldout_mse": fit["heldout_mse"], "heldout_auc": fit["heldout_auc"],
         "heldout_sibling_auc": fit.get("heldout_sibling_auc"),
         "heldout_states": fit["heldout_states"]}, fit["losses"])
    if orm is not None and orm["pairs"]:
        tracking.log_training(mlflow_run, f"{name}/orm", {
            "model": "orm", "trace_snapshot": f"{snapshot}/orm", "view": "orm_rows",
            "trainer": "trl.RewardTrainer", "init": orm_init, "output": orm["path"],
            "pairs_per_tree": config.orm.pairs_per_tree,
            **{f"orm.{k}": v for k, v in dataclasses.asdict(config.orm.training).items()}},
            {"train_loss": orm["train_loss"], "rows": orm["pairs"], "steps": orm["steps"]}, orm["losses"])


def summary_rows(table: list[dict]) -> list[dict]:
    """The table sorted by iteration then method (for printing)."""
    return sorted(table, key=lambda r: (r["iteration"], r["method"]))

