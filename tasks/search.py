"""Search a slice of problems with one method, at one or more token budgets; write the trees as a shard."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from problems import select_problems
from search import METHODS, POOLED, UNGUIDED
from search.sampling import sample_paths
from search.verifiers import calculator_guard
from storage.store import write_shard
from storage.traces import problem_row, result_rows
from tasks import resume
from tasks.progress import bar
from tasks.retries import TRANSIENT

_LOADING = threading.Lock()


def _costs(policy, value) -> dict:
    out = {f"policy_{k}": v for k, v in policy.stats.as_dict().items()}
    out.update(value_tokens=value.scored_tokens if value else 0, value_calls=value.calls if value else 0)
    return out


def _delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in after}


def _add(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in a}


def stream_seed(seed: int, index: int, budget) -> int:
    """The sampling stream of the batch starting at problem `index` (absolute) for one budget (or "pool"):
    the same problems give the same trees however the slice is cut into shards."""
    key = hashlib.sha256(f"{seed}/{index}/{budget}".encode()).digest()
    return int.from_bytes(key[:8], "little") >> 1


def run_search(*, task_name: str, task_options: dict, split: str, start: int, count: int, method: str,
               method_config, policy_path: str, value_path: str | None, temperature: float,
               max_step_tokens: int, max_batch_rows: int, batch_size: int, seed: int, shard: str,
               run_id: str, iteration: int, stage: str, budgets: list[int | None] | None = None,
               backend: str = "transformers", device: str = "cpu", dtype: str = "auto",
               torch_threads: int | None = None, calculator: bool = False, step_delimiter: str = "\n",
               prompt_format: str = "plain", system_prompt: str | None = None,
               gpu_memory_utilization: float = 0.85) -> dict:
    """Search problems [start, start + count) of a split at every budget (default: the config's own).

    Self-Consistency and Best-of-N draw one sample pool per problem and truncate it to each budget, so
    n = 1, 2, 4, ... share their samples; every other method runs once per budget. Returns the shard
    path and, per budget, what it cost: generated tokens, prefill tokens, value tokens, policy and
    value calls, wall seconds (a pooled method's sampling cost is the pool's, shared by its budgets).
    `torch_threads`: the intra-op threads for this call's thread (shards searched side by side in threads
    split the cores; one thread per core measured fastest here). `calculator`: a guided method scores a state
    whose steps write a false equation at the lowest value, before the value model (`calculator_guard`).
    """
    import torch

    from models.hf_policy import TransformersPolicy
    from models.prompts import chat_prompt
    from models.value import load_value

    torch.manual_seed(seed)
    if torch_threads is not None:  # a worker thread's own share of the cores (it applies to this thread)
        torch.set_num_threads(torch_threads)
    problems = select_problems(task_name, split, start, count, task_options)
    with _LOADING:  # transformers' loading is not thread-safe; shards searched in threads load one by one
        if backend == "vllm":
            from models.vllm_policy import VLLMPolicy

            policy = VLLMPolicy(policy_path, temperature=temperature, seed=seed, max_step_tokens=max_step_tokens,
                                dtype=dtype, step_delimiter=step_delimiter,
                                gpu_memory_utilization=gpu_memory_utilization)
        else:
            policy = TransformersPolicy.from_pretrained(policy_path, temperature=temperature, seed=seed,
                                                        device=device, dtype=dtype,
                                                        max_step_tokens=max_step_tokens,
                                                        max_batch_rows=max_batch_rows,
                                                        step_delimiter=step_delimiter)
        guided = value_path and method not in UNGUIDED
        value = (load_value(value_path, device=device, dtype=dtype, step_delimiter=step_delimiter) if guided
                 else None)
    if prompt_format == "chat":  # the question in the policy's chat template: what it continues and what is stored
        problems = [replace(p, prompt=chat_prompt(policy.tokenizer, p.question, system_prompt)) for p in problems]
    fn, _ = METHODS[method]
    if hasattr(method_config, "seed"):
        method_config = replace(method_config, seed=seed)
    if method == "greedy":  # one path at temperature 0 whatever the config says (it decodes from a pool below)
        method_config = replace(method_config, n=1, temperature=0.0)
    budgets = [None] if method == "greedy" else budgets or [getattr(method_config, "token_budget", None)]
    nothing = {**dict.fromkeys(_costs(policy, value), 0), "wall_seconds": 0.0}
    costs = {b: nothing for b in budgets}
    trees, nodes = [], []
    prompts = [p.prompt for p in problems]
    evaluate = value.scorer(prompts) if value else None
    if calculator and method not in UNGUIDED:
        evaluate = calculator_guard(evaluate, prompts)

    def measured(work, *args, **kwargs):
        """Call `work`; return its result and what it cost (counters and wall seconds)."""
        before, t0 = _costs(policy, value), time.perf_counter()
        result = work(*args, **kwargs)
        return result, {**_delta(_costs(policy, value), before), "wall_seconds": time.perf_counter() - t0}

    def record(b, spent: dict, results, batch) -> None:
        costs[b] = _add(costs[b], spent)
        for p, r in zip(batch, results, strict=True):
            tree_row, node_rows = result_rows(
                r, p, tree_id=f"{run_id}/{iteration}/{stage}/{method}/b{b}/s{seed}/{p.id}", run_id=run_id,
                iteration=iteration, stage=stage, split=split, method=method, policy=policy_path,
                value_model=value_path if value else None, budget=b, seed=seed)
            trees.append(tree_row)
            nodes.extend(node_rows)

    def reseed(i: int, budget) -> None:
        if hasattr(policy, "reseed"):
            policy.reseed(stream_seed(seed, start + i, budget))

    # greedy draws nothing, so how its problems are batched decides no sample: as many at once as the policy
    # decodes in one batch (2,000 testbed problems: 29 s in batches of 64, ~10 s in batches of 512)
    per_batch = max(batch_size, max_batch_rows) if method == "greedy" else batch_size
    with bar(f"{stage} it{iteration} {method}", len(problems)) as update:
        for i in range(0, len(problems), per_batch):
            batch = problems[i:i + per_batch]
            prompts, canonical = [p.prompt for p in batch], batch[0].canonical
            pool, pool_cost = None, nothing
            if method in POOLED:  # one pool for every budget, its cost charged to each
                reseed(i, "pool")
                pool, pool_cost = measured(sample_paths, prompts, propose=policy.propose_steps, n=method_config.n,
                                           temperature=method_config.temperature,
                                           max_depth=method_config.max_depth,
                                           complete=getattr(policy, "propose_paths", None))
            for b in budgets:
                config = replace(method_config, token_budget=b) if hasattr(method_config, "token_budget") \
                    else method_config
                if pool is not None:
                    results, spent = measured(POOLED[method], prompts, pool, config, evaluate=evaluate,
                                              canonical=canonical)
                else:
                    reseed(i, b)
                    results, spent = measured(fn, prompts, config, propose=policy.propose_steps,
                                              evaluate=evaluate, canonical=canonical)
                record(b, _add(spent, pool_cost), results, batch)
            update(i + len(batch))
    path = write_shard(Path(shard), trees=trees, nodes=nodes, problems=[problem_row(p) for p in problems])
    return {"shard": str(path), "costs": costs, "trees": len(trees), **policy.stats.as_dict(),
            "value_tokens": value.scored_tokens if value else 0}


#: arguments that change where or how fast a search runs, not what it finds
_NOT_INPUTS = ("shard", "torch_threads")


@task(name="search", cache_policy=NONE, persist_result=False, **TRANSIENT)
def search_task(**kwargs) -> dict:
    """Prefect task around `run_search` (keyword arguments as there).

    A shard that a previous attempt of the same run completed with the same inputs (the models by their
    own training fingerprint) is not searched again: its recorded result comes back (`tasks.resume`).
    """
    key = search_key(kwargs)
    if (hit := finished_shard(kwargs, key)) is not None:
        return hit
    result = run_search(**kwargs)
    # JSON keeps only string keys: the costs per budget are recorded as [budget, costs] pairs
    resume.finish(result["shard"], key, {**result, "costs": [[b, c] for b, c in result["costs"].items()]})
    return result


def search_key(kwargs: dict) -> str:
    """The fingerprint of a search: its arguments, the models by their own training fingerprint."""
    inputs = {k: v for k, v in kwargs.items() if k not in _NOT_INPUTS}
    inputs.update(policy_path=resume.identity(kwargs["policy_path"]),
                  value_path=resume.identity(kwargs.get("value_path")))
    return resume.fingerprint(**inputs)


def finished_shard(kwargs: dict, key: str | None = None) -> dict | None:
    """What the search with these arguments returned, if its shard is complete on disk (searched here or by
    another process sharing the shard directory)."""
    hit = resume.done(kwargs["shard"], key or search_key(kwargs))
    return None if hit is None else {**hit, "costs": dict(hit["costs"])}
