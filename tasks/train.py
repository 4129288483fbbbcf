"""Training tasks: read a training set from the trace store's views, train, return the new model path."""

from __future__ import annotations

import json
import random
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from models.confidence import fit_confidence_value
from models.metrics import heldout_value_metrics
from models.prm import is_prm_spec
from models.tiny import TinyRecipe, demonstrations
from models.training import (
    RewardSettings,
    SFTSettings,
    ValueSettings,
    planned_steps,
    train_orm,
    train_policy,
    train_value,
)
from models.value import load_value
from storage import store
from storage.datasets import value_paths_query, value_view
from tasks import resume
from tasks.progress import bar


def d_plus_query(run_id: str, iteration: int, *, min_value: float | None = None,
                 min_logprob: float | None = None, equations: bool = False) -> tuple[str, list]:
    """The FROM ... WHERE of an iteration's D+ in `sft_traces`, and its parameters: the correct paths its search
    found, kept only where the search valued every step at least `min_value`, the policy's least confident step
    has a mean token log-prob of at least `min_logprob` (a path with nothing recorded passes: sampled paths carry
    no values) and, with `equations`, every equation the path writes holds (the store's `equations_hold`, a
    calculator). None reads the gold answer; a right answer is often reached through a wrong step."""
    where, params = "FROM sft_traces WHERE run_id = ? AND stage = 'search' AND iteration = ?", [run_id, iteration]
    for column, floor in (("min_value", min_value), ("min_logprob", min_logprob)):
        if floor is not None:
            where += f" AND coalesce({column} >= ?, true)"
            params.append(floor)
    if equations:
        where += " AND equations_hold(completion)"
    return where, params


@task(name="sft-policy", cache_policy=NONE, persist_result=False)
def sft_policy_task(store_path: str, run_id: str, iteration: int, init_path: str, out_dir: str,
                    settings: SFTSettings, recipe: TinyRecipe | None, mix_demos: int, *,
                    min_value: float | None = None, min_logprob: float | None = None,
                    equations: bool = False, reference: dict | None = None) -> dict:
    """SFT the policy on this iteration's distinct correct traces (D+, filtered as `d_plus_query` says), plus
    `mix_demos` demonstrations: the tiny recipe's, or (`reference`, a given policy) the task's reference
    solutions in the policy's prompt and step format (`reference_demos`)."""
    where, params = d_plus_query(run_id, iteration, min_value=min_value, min_logprob=min_logprob,
                                 equations=equations)
    sql = f"SELECT DISTINCT prompt, completion {where} ORDER BY prompt, completion"
    _, rows = store.query(store_path, sql, params)
    traces = [{"prompt": p, "completion": c} for p, c in rows]
    demos = []
    if mix_demos and recipe is not None:
        demos = mixed_demos(recipe, settings, iteration, mix_demos)
    elif mix_demos and reference is not None:
        demos = reference_demos(reference, init_path, settings.seed + iteration, mix_demos)
    data = traces + demos
    if not data:  # nothing correct was found and there are no demonstrations: keep the policy
        return {"path": init_path, "traces": 0, "demos": 0, "train_loss": None, "steps": 0, "losses": []}
    key = _key(init_path, settings, data)
    if (hit := resume.done(out_dir, key)) is not None:
        return hit
    with bar(f"sft it{iteration} ({len(traces)} traces)", planned_steps(settings, len(data))) as update:
        history = train_policy(init_path, data, out_dir, settings, progress=lambda s, _: update(s))
    _snapshot(store_path, run_id, iteration, "policy", out_dir, init_path, "sft_traces", None, sql,
              f"SELECT DISTINCT tree_id {where} ORDER BY 1", params, traces, extra_rows=len(demos))
    return resume.finish(out_dir, key, {"path": out_dir, "traces": len(traces), "demos": len(demos), **history})


def mixed_demos(recipe: TinyRecipe, settings: SFTSettings, iteration: int, count: int) -> list[dict]:
    """The `count` original demonstrations iteration `iteration`'s SFT mixes in with its traces."""
    return random.Random(settings.seed + iteration).sample(demonstrations(recipe), count)


def reference_demos(reference: dict, policy: str, seed: int, count: int) -> list[dict]:
    """`count` training problems' reference solutions (GSM8K's rationales, MATH's solutions) as demonstrations
    in the policy's own format: its prompt (`prompt_format`, `system_prompt`), one step per paragraph or line
    ended by `step_delimiter`, the last stating the answer. Tasks without reference solutions give none."""
    import importlib

    from problems import load_problems

    module = importlib.import_module(f"problems.{reference['task']}")
    if not hasattr(module, "solution_steps") or getattr(module, "GENERATED", False):
        return []
    pool = [p for p in load_problems(reference["task"], "train", **reference.get("options", {})) if p.solution]
    chosen = random.Random(seed).sample(pool, min(count, len(pool)))
    prompts = [p.prompt for p in chosen]
    if reference.get("prompt_format") == "chat":
        from transformers import AutoTokenizer

        from models.errors import resolve_model
        from models.prompts import chat_prompt

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(policy))
        prompts = [chat_prompt(tokenizer, p.question, reference.get("system_prompt")) for p in chosen]
    delimiter = reference.get("step_delimiter", "\n")
    out = []
    for p, prompt in zip(chosen, prompts, strict=True):
        steps = [s[:-1] + delimiter if s.endswith("\n") else s for s in module.solution_steps(p, p.solution)]
        out.append({"prompt": prompt, "completion": "".join(steps)})
    return out


def _key(init_path: str, settings, rows: list, **more) -> str:
    """The fingerprint of a training: the model it starts from, its settings, its rows in order."""
    return resume.fingerprint(init=resume.identity(init_path), settings=settings, rows=store.rows_digest(rows),
                              **more)


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


#: where a run's value / ORM training rows come from: its bootstrap rollouts and searches up to an iteration
_OF_RUN = "WHERE t.run_id = ? AND t.stage IN ('bootstrap', 'search') AND t.iteration <= ?"


def held_out_sql(tree_id: str = "v.tree_id", run_id: str = "t.run_id") -> str:
    """SQL true for a tree held out of value training: its hashed id, without the run id it starts with,
    falls below the held-out fraction (per mille, the parameter). Without the run id, two runs of one config
    and seed hold out the same trees, whatever their (random) run ids."""
    return f"md5_number(substr({tree_id}, length({run_id}) + 2)) % 1000 < ?"


_HELD_OUT = held_out_sql()
METRICS_FILE = "treeflow_value_metrics.json"


def _value_paths_of_run(targets: str, td_lambda: float, hard: bool) -> str:
    return (f"FROM ({value_paths_query(targets, td_lambda, hard=hard)}) v "
            f"JOIN trees t USING (tree_id) JOIN problems p USING (problem_id) {_OF_RUN}")


def value_training_rows(store_path: str, run_id: str, max_iteration: int, targets: str, td_lambda: float,
                        holdout: float) -> tuple[str, list, list[dict]]:
    """The value model's training rows from this run's trees up to `max_iteration`, the held-out trees left
    out: the query, its parameters, and one `{"segments": [[prompt, None], [step, target], ...]}` per path."""
    sql = (f"SELECT p.prompt, v.steps, v.targets {_value_paths_of_run(targets, td_lambda, False)} "
           f"AND NOT {_HELD_OUT} ORDER BY v.tree_id, v.leaf_id")
    params = [run_id, max_iteration, round(1000 * holdout)]
    _, rows = store.query(store_path, sql, params)
    data = [{"segments": [[prompt, None], *([s, float(t)] for s, t in zip(steps, values, strict=True))]}
            for prompt, steps, values in rows]
    return sql, params, data


@task(name="fit-value", cache_policy=NONE, persist_result=False)
def fit_value_task(store_path: str, run_id: str, max_iteration: int, init_path: str, out_dir: str,
                   settings: ValueSettings, targets: str = "monte_carlo", td_lambda: float = 0.9,
                   holdout: float = 0.1, device: str = "cpu", dtype: str = "auto", model: str = "head",
                   step_delimiter: str = "\n") -> dict:
    """Train the value model on the step targets of this run's trees so far (`targets`: a method of
    `storage.datasets.VALUE_TARGETS`), holding out a `holdout` fraction of trees to measure it on. `model`:
    "head" trains a scalar head on the backbone (`settings`); "confidence" fits `models.confidence`'s weights
    over the LM's step log-probabilities (`settings` unused).

    Returns the model path, the loss history and the held-out MSE and step AUC, scored on `device` in `dtype`
    (also written to `<out_dir>/treeflow_value_metrics.json`, so a cached model keeps its figures).
    """
    cut = round(1000 * holdout)
    if is_prm_spec(init_path):  # a published PRM is used as it is: measured on the held-out trees, never refit
        return {"path": init_path, "targets": 0, "train_loss": None, "steps": 0, "losses": [], "settings": {},
                **_heldout_metrics(store_path, run_id, max_iteration, targets, td_lambda, cut, init_path, device,
                                   dtype, step_delimiter)}
    sql, params, data = value_training_rows(store_path, run_id, max_iteration, targets, td_lambda, holdout)
    where = _value_paths_of_run(targets, td_lambda, False)
    key = _key(init_path, settings, data, holdout=cut, **({"model": model} if model != "head" else {}))
    if (hit := resume.done(out_dir, key)) is not None:
        return hit
    if model == "confidence":
        with bar(f"value it{max_iteration} ({len(data)} paths, confidence)", len(data)) as update:
            history = fit_confidence_value(init_path, data, out_dir, device=device,
                                           progress=lambda done, _: update(done))
    else:
        with bar(f"value it{max_iteration} ({len(data)} paths)", planned_steps(settings, len(data))) as update:
            history = train_value(init_path, data, out_dir, settings, progress=lambda s, _: update(s))
    _snapshot(store_path, run_id, max_iteration, "value", out_dir, init_path, value_view(targets), targets, sql,
              f"SELECT DISTINCT v.tree_id {where} AND NOT {_HELD_OUT} ORDER BY 1", params, data)
    metrics = _heldout_metrics(store_path, run_id, max_iteration, targets, td_lambda, cut, out_dir, device, dtype,
                               step_delimiter)
    (Path(out_dir) / METRICS_FILE).write_text(json.dumps(metrics))
    return resume.finish(out_dir, key, {"path": out_dir, "targets": len(data), **metrics, **history})


def _heldout_metrics(store_path: str, run_id: str, max_iteration: int, targets: str, td_lambda: float, cut: int,
                     value_path: str, device: str, dtype: str, step_delimiter: str) -> dict:
    """The value model's MSE and step AUC on the held-out trees' targets (None where nothing is held out)."""
    if cut <= 0:
        return {"heldout_states": 0, "heldout_mse": None, "heldout_auc": None, "heldout_sibling_auc": None}
    sql = (f"SELECT p.prompt, v.steps, v.targets, v.hard_targets {_value_paths_of_run(targets, td_lambda, True)} "
           f"AND {_HELD_OUT} ORDER BY v.tree_id, v.leaf_id")
    _, held = store.query(store_path, sql, [run_id, max_iteration, cut])
    value = load_value(value_path, device=device, dtype=dtype, step_delimiter=step_delimiter)
    rows = [{"prompt": p, "steps": s, "targets": t, "hard": h} for p, s, t, h in held]
    return heldout_value_metrics(value.scorer({row["prompt"] for row in rows}), rows)


def value_metrics(path: str) -> dict:
    """The held-out figures a value model directory was saved with (empty when it has none)."""
    file = Path(path) / METRICS_FILE
    return json.loads(file.read_text()) if file.is_file() else {}


@task(name="fit-orm", cache_policy=NONE, persist_result=False)
def fit_orm_task(store_path: str, run_id: str, max_iteration: int, init_path: str, out_dir: str,
                 settings: RewardSettings, pairs_per_tree: int) -> dict:
    """Train the ORM (TRL RewardTrainer) on (correct, wrong) whole solutions of the same tree, at most
    `pairs_per_tree` per tree, from this run's trees so far."""
    where = f"FROM orm_rows v JOIN trees t USING (tree_id) {_OF_RUN}"
    pairs_cte = ("WITH r AS (SELECT DISTINCT v.tree_id, v.prompt, v.completion, v.label " + where + "), "
                 "pairs AS (SELECT c.tree_id, c.prompt, c.completion AS chosen, w.completion AS rejected, "
                 "row_number() OVER (PARTITION BY c.tree_id ORDER BY md5(c.completion || w.completion)) AS k "
                 "FROM r c JOIN r w ON w.tree_id = c.tree_id AND c.label AND NOT w.label) ")
    sql = pairs_cte + "SELECT prompt, chosen, rejected FROM pairs WHERE k <= ? ORDER BY tree_id, k"
    params = [run_id, max_iteration, pairs_per_tree]
    _, rows = store.query(store_path, sql, params)
    pairs = [{"chosen": p + c, "rejected": p + r} for p, c, r in rows]
    if not pairs:  # no tree had both a right and a wrong answer: nothing trained
        return {"path": None, "pairs": 0, "train_loss": None, "steps": 0, "losses": []}
    key = _key(init_path, settings, pairs)
    if (hit := resume.done(out_dir, key)) is not None:
        return hit
    with bar(f"orm it{max_iteration} ({len(pairs)} pairs)", planned_steps(settings, len(pairs))) as update:
        history = train_orm(init_path, pairs, out_dir, settings, progress=lambda s, _: update(s))
    _snapshot(store_path, run_id, max_iteration, "orm", out_dir, init_path, "orm_rows", "preference", sql,
              pairs_cte + "SELECT DISTINCT tree_id FROM pairs WHERE k <= ? ORDER BY 1", params, pairs)
    return resume.finish(out_dir, key, {"path": out_dir, "pairs": len(pairs), **history})
