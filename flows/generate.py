"""Generation fanned out over shards of problems: each shard is one search task writing one Parquet
shard, `parallelism` of them at a time on the flow's task runner, then one ingest (the single DuckDB
writer). The flywheel and ReST-EM flows generate this way; `generate` is the same as its own flow, to
deploy on a GPU work pool or to time (`benchmarks/fanout.py`).
"""

from __future__ import annotations

import os

from prefect import flow

from tasks.search import search_task
from tasks.store import ingest_task


def shard_slices(start: int, count: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, start + count) cut into (start, count) slices of at most `shard_size` problems."""
    return [(s, min(shard_size, start + count - s)) for s in range(start, start + count, shard_size)]


def fan_out(search_kwargs: dict, *, start: int, count: int, shard: str, shard_size: int, parallelism: int,
            store_path: str | None) -> dict:
    """Search problems [start, start + count) shard by shard, `parallelism` shards at a time, then ingest
    every shard at once (when `store_path` is given). Returns the shards, the summed generated tokens and
    costs per budget, and the number of new trees."""
    slices = shard_slices(start, count, shard_size)
    name = lambda s: shard if len(slices) == 1 else f"{shard}-{s:06d}"  # noqa: E731
    results: list[dict] = []
    if parallelism == 1:  # in this thread: torch runs fastest on the thread that owns its thread pool
        results = [search_task(**search_kwargs, start=s, count=n, shard=name(s)) for s, n in slices]
    else:  # shards at once on worker threads, the CPU's cores split between them
        threads = max(1, (os.cpu_count() or 1) // parallelism)
        for wave in range(0, len(slices), parallelism):
            futures = [search_task.submit(**search_kwargs, start=s, count=n, shard=name(s), torch_threads=threads)
                       for s, n in slices[wave:wave + parallelism]]
            results += [f.result() for f in futures]
    added = ingest_task(store_path, [r["shard"] for r in results]) if store_path else 0
    costs: dict = {}
    for r in results:
        for budget, c in r["costs"].items():
            costs[budget] = {k: costs.get(budget, {}).get(k, 0) + v for k, v in c.items()}
    return {"shards": [r["shard"] for r in results], "costs": costs, "added": added,
            "trees": sum(r["trees"] for r in results),
            "generated_tokens": sum(r["generated_tokens"] for r in results)}


@flow(name="generate")
def generate(search_kwargs: dict, start: int, count: int, shard: str, shard_size: int = 64, parallelism: int = 1,
             store_path: str | None = None) -> dict:
    """`fan_out` as a flow of its own (search keyword arguments as `tasks.search.run_search` takes them)."""
    return fan_out(search_kwargs, start=start, count=count, shard=shard, shard_size=shard_size,
                   parallelism=parallelism, store_path=store_path)
