"""Search a slice of problems with one method and write the trees as a Parquet shard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from problems import select_problems
from search import METHODS
from storage.store import write_shard
from storage.traces import problem_row, result_rows
from tasks.progress import bar

#: methods that call the value model
VALUE_GUIDED = {"mcts_alpha", "bfs_v"}


def run_search(*, task_name: str, task_options: dict, split: str, start: int, count: int, method: str,
               method_config, policy_path: str, value_path: str | None, temperature: float,
               max_step_tokens: int, max_batch_rows: int, batch_size: int, seed: int, shard: str,
               run_id: str, iteration: int, stage: str) -> dict:
    """Search problems [start, start + count) of a split; returns the shard path and generation stats."""
    import torch

    from models.hf_policy import TransformersPolicy
    from models.value import TransformersValue

    torch.manual_seed(seed)
    problems = select_problems(task_name, split, start, count, task_options)
    policy = TransformersPolicy.from_pretrained(policy_path, temperature=temperature, seed=seed,
                                                max_step_tokens=max_step_tokens, max_batch_rows=max_batch_rows)
    value = TransformersValue(value_path) if value_path and method in VALUE_GUIDED else None
    fn, _ = METHODS[method]
    if hasattr(method_config, "seed"):
        method_config = replace(method_config, seed=seed)
    trees, nodes = [], []
    with bar(f"{stage} it{iteration} {method}", len(problems)) as update:
        for b in range(0, len(problems), batch_size):
            batch = problems[b:b + batch_size]
            results = fn([p.prompt for p in batch], method_config, propose=policy.propose_steps,
                         evaluate=value.score if value else None, canonical=batch[0].canonical)
            for p, r in zip(batch, results, strict=True):
                tree_row, node_rows = result_rows(
                    r, p, tree_id=f"{run_id}/{iteration}/{stage}/{method}/{p.id}", run_id=run_id,
                    iteration=iteration, stage=stage, split=split, method=method, policy=policy_path,
                    value_model=value_path if value else None)
                trees.append(tree_row)
                nodes.extend(node_rows)
            update(b + len(batch))
    path = write_shard(Path(shard), trees=trees, nodes=nodes, problems=[problem_row(p) for p in problems])
    return {"shard": str(path), **policy.stats.as_dict(),
            "value_tokens": value.scored_tokens if value else 0}


@task(name="search", cache_policy=NONE, persist_result=False)
def search_task(**kwargs) -> dict:
    """Prefect task around `run_search` (keyword arguments as there)."""
    return run_search(**kwargs)
