"""The evaluation protocol: every method on the same test problems at the same generated-token budgets.

One row per (method, budget, seed) goes to the trace store's `evaluations` table (with the trees
behind it) and to MLflow (a run per seed, nested under the evaluation's run, with the figure of
accuracy against generated tokens as an artifact). Self-Consistency and Best-of-N draw one sample pool
per seed and cut it to each budget; every other method runs once per budget.
"""

from __future__ import annotations

import time
import uuid

from prefect import flow

from flows.config import FlywheelConfig
from flows.figures import plot_accuracy_vs_tokens
from flows.flywheel import EVAL_METRICS, _bootstrap_value, _evaluate, bootstrap_policy_task
from tasks import tracking
from tasks.store import record_run_task


@flow(name="evaluate")
def evaluate(config: FlywheelConfig, seeds: list[int], plot: str | None = None) -> list[dict]:
    """Evaluate `config.evaluation.methods` at `config.evaluation.budgets` for every seed; returns the rows."""
    import mlflow

    paths = config.paths
    paths["root"].mkdir(parents=True, exist_ok=True)
    run_id = config.run_id or f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    store_path = str(paths["store"])
    budgets = config.evaluation.budgets or [config.evaluation.token_budget]
    record_run_task(store_path, run_id, "evaluate", {**config.model_dump(mode="json"), "seeds": seeds})
    experiment = tracking.setup(tracking.tracking_uri(paths["mlflow"]), paths["artifacts"])
    policy = bootstrap_policy_task(config)
    value = _bootstrap_value(config, run_id, policy)
    rows: list[dict] = []
    with mlflow.start_run(experiment_id=experiment, run_name=run_id) as parent:
        mlflow.set_tags({"treeflow.run_id": run_id, "treeflow.kind": "evaluate"})
        mlflow.log_params({"task": config.task.name, "test_size": config.task.test_size, "policy": policy,
                           "value": value, "budgets": ",".join(map(str, budgets)),
                           "methods": ",".join(config.evaluation.methods), "seeds": ",".join(map(str, seeds))})
        for seed in seeds:
            seeded = config.model_copy(update={"seed": seed})
            with mlflow.start_run(experiment_id=experiment, run_name=f"{run_id}/seed-{seed}", nested=True,
                                  parent_run_id=parent.info.run_id) as seed_run:
                for row in _evaluate(seeded, run_id, 0, policy, value):
                    rows.append(row)
                    key = row["method"] if row["budget"] is None else f"{row['method']}/b{row['budget']}"
                    tracking.log_metrics(seed_run.info.run_id,
                                         {f"{key}/{name}": row[name] for name in EVAL_METRICS})
        figure = plot_accuracy_vs_tokens(
            rows, plot or paths["root"] / f"{run_id}-accuracy-vs-tokens.png",
            f"{config.task.name}: accuracy vs generated tokens ({len(seeds)} seed{'s' * (len(seeds) > 1)}, "
            f"{config.task.test_size} problems)")
        mlflow.log_artifact(str(figure))
    return rows
