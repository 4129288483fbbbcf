"""Training tasks: read a training set from the trace store's views, train, return the new model path."""

from __future__ import annotations

import random

from prefect import task
from prefect.cache_policies import NONE

from models.tiny import TinyRecipe, demonstrations
from models.training import SFTSettings, ValueSettings, planned_steps, train_policy, train_value
from storage import store
from tasks.progress import bar


@task(name="sft-policy", cache_policy=NONE, persist_result=False)
def sft_policy_task(store_path: str, run_id: str, iteration: int, init_path: str, out_dir: str,
                    settings: SFTSettings, recipe: TinyRecipe | None, mix_demos: int) -> dict:
    """SFT the policy on this iteration's distinct correct traces (D+), plus original demonstrations."""
    where = "FROM sft_traces WHERE run_id = ? AND stage = 'search' AND iteration = ?"
    sql = f"SELECT DISTINCT prompt, completion {where} ORDER BY prompt, completion"
    _, rows = store.query(store_path, sql, [run_id, iteration])
    traces = [{"prompt": p, "completion": c} for p, c in rows]
    demos = []
    if recipe is not None and mix_demos:
        demos = random.Random(settings.seed + iteration).sample(demonstrations(recipe), mix_demos)
    data = traces + demos
    if not data:  # nothing correct was found and there are no demonstrations: keep the policy
        return {"path": init_path, "traces": 0, "demos": 0, "train_loss": None, "steps": 0, "losses": []}
    with bar(f"sft it{iteration} ({len(traces)} traces)", planned_steps(settings, len(data))) as update:
        history = train_policy(init_path, data, out_dir, settings, progress=lambda s, _: update(s))
    _snapshot(store_path, run_id, iteration, "policy", out_dir, init_path, "sft_traces", None, sql,
              f"SELECT DISTINCT tree_id {where} ORDER BY 1", [run_id, iteration], traces, extra_rows=len(demos))
    return {"path": out_dir, "traces": len(traces), "demos": len(demos), **history}


def _snapshot(store_path: str, run_id: str, iteration: int, kind: str, model: str, init: str, view: str,
              method: str | None, sql: str, tree_sql: str, params: list, rows: list, extra_rows: int = 0) -> None:
    """Record which rows (the query, its digest, the trees they came from) trained this model version."""
    _, ids = store.query(store_path, tree_sql, params)
    with store.connect(store_path) as con:
        store.record_snapshot(con, {
            "snapshot_id": f"{run_id}/{iteration}/{kind}", "run_id": run_id, "iteration": iteration,
            "model_kind": kind, "model_uri": model, "init_uri": init, "source_view": view, "target_method": method,
            "query": sql, "query_params": params, "n_rows": len(rows), "tree_ids": [i for (i,) in ids],
            "rows_sha256": store.rows_digest(rows), "extra_rows": extra_rows})


@task(name="fit-value", cache_policy=NONE, persist_result=False)
def fit_value_task(store_path: str, run_id: str, max_iteration: int, init_path: str, out_dir: str,
                   settings: ValueSettings, targets: str = "monte_carlo") -> dict:
    """Regress the value model, at every token, on step values of this run's search trees so far.

    `targets`: "monte_carlo" (mean outcome below each step) or "math_shepherd_hard" (any correct below).
    """
    column = {"monte_carlo": "targets", "math_shepherd_hard": "hard_targets"}[targets]
    where = ("FROM value_paths v JOIN trees t USING (tree_id) JOIN problems p USING (problem_id) "
             "WHERE t.run_id = ? AND t.stage IN ('bootstrap', 'search') AND t.iteration <= ?")
    sql = f"SELECT p.prompt, v.steps, v.{column} {where} ORDER BY v.tree_id, v.leaf_id"
    _, rows = store.query(store_path, sql, [run_id, max_iteration])
    data = [{"segments": [[prompt, None], *([s, float(t)] for s, t in zip(steps, targets, strict=True))]}
            for prompt, steps, targets in rows]
    with bar(f"value it{max_iteration} ({len(data)} paths)", planned_steps(settings, len(data))) as update:
        history = train_value(init_path, data, out_dir, settings, progress=lambda s, _: update(s))
    _snapshot(store_path, run_id, max_iteration, "value", out_dir, init_path, "value_paths", targets, sql,
              f"SELECT DISTINCT v.tree_id {where} ORDER BY 1", [run_id, max_iteration], data)
    return {"path": out_dir, "targets": len(data), **history}
