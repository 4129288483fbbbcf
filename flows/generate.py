"""Generation fanned out over shards of problems: each shard is one search writing one Parquet shard, then
one ingest (the single DuckDB writer). Where the shards run (`generation.runner`):

- `local`: tasks on the flow's own task runner, `parallelism` at a time (threads splitting the cores);
- `deployment`: each shard a run of the `generate` deployment (`run_deployment`), on whatever work pool it
  is deployed to (GPU workers, in prefect.yaml), `parallelism` at a time;
- `ray`: tasks on a Ray cluster through `prefect-ray` (`pip install 'treeflow[ray]'`).

Workers off this machine must share the work directory (the shards land there). A shard already complete
on disk (an earlier attempt of the same run searched it) is not searched again. The flywheel and ReST-EM
flows generate this way; `generate` is the same as its own flow, to deploy on a GPU work pool or to time
(`benchmarks/fanout.py`).
"""

from __future__ import annotations

import dataclasses
import os

from prefect import flow, task
from prefect.cache_policies import NONE

from tasks.search import finished_shard, search_task
from tasks.store import ingest_task


class RunnerUnavailable(RuntimeError):
    """A generation runner that cannot run here (prefect-ray not installed)."""


def shard_slices(start: int, count: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, start + count) cut into (start, count) slices of at most `shard_size` problems."""
    return [(s, min(shard_size, start + count - s)) for s in range(start, start + count, shard_size)]


def fan_out(search_kwargs: dict, *, start: int, count: int, shard: str, shard_size: int, parallelism: int,
            store_path: str | None, runner: str = "local", deployment: str = "generate/treeflow",
            ray_address: str | None = None) -> dict:
    """Search problems [start, start + count) shard by shard, `parallelism` shards at a time, on `runner`,
    then ingest every shard at once (when `store_path` is given). Returns the shards, the summed generated
    tokens and costs per budget, the number of trees searched and the number new to the store."""
    slices = shard_slices(start, count, shard_size)
    name = lambda s: shard if len(slices) == 1 else f"{shard}-{s:06d}"  # noqa: E731
    shards = [{**search_kwargs, "start": s, "count": n, "shard": name(s)} for s, n in slices]
    if runner == "ray":
        results = _on_ray(ray_address)(shards, parallelism)
    elif runner == "deployment":
        results = _waves([remote_shard_task.submit(kwargs, deployment) for kwargs in wave]
                         for wave in _chunks(shards, parallelism))
    elif parallelism == 1:  # in this thread: torch runs fastest on the thread that owns its thread pool
        results = [search_task(**kwargs) for kwargs in shards]
    else:  # shards at once on worker threads, the CPU's cores split between them
        threads = max(1, (os.cpu_count() or 1) // parallelism)
        results = _waves([search_task.submit(**kwargs, torch_threads=threads) for kwargs in wave]
                         for wave in _chunks(shards, parallelism))
    added = ingest_task(store_path, [r["shard"] for r in results]) if store_path else 0
    wave = 1 if runner == "local" and parallelism == 1 else parallelism
    return {"shards": [r["shard"] for r in results], "costs": summed_costs(results, wave), "added": added,
            "trees": sum(r["trees"] for r in results),
            "generated_tokens": sum(r["generated_tokens"] for r in results)}


def summed_costs(results: list[dict], wave: int) -> dict:
    """Per budget, the shards' counters summed; `wall_seconds` is the time the shards took as they ran, `wave`
    at a time (each wave as long as its slowest shard), and `worker_seconds` the sum of their times."""
    costs: dict = {}
    for r in results:
        for budget, c in r["costs"].items():
            costs[budget] = {k: costs.get(budget, {}).get(k, 0) + v for k, v in c.items()}
    for budget, c in costs.items():
        c["worker_seconds"] = c["wall_seconds"]
        c["wall_seconds"] = sum(max((r["costs"][budget]["wall_seconds"] for r in chunk if budget in r["costs"]),
                                    default=0.0) for chunk in _chunks(results, wave))
    return costs


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _waves(waves) -> list[dict]:
    """Submit each wave of futures and wait for it before the next."""
    return [future.result() for wave in waves for future in wave]


@task(name="remote-shard", cache_policy=NONE, persist_result=False)
def remote_shard_task(kwargs: dict, deployment: str) -> dict:
    """One shard searched by a run of `deployment` (a `generate` deployment on some work pool); returns what
    the search returned, read from the shard it wrote (the work directory is shared)."""
    from prefect.deployments import run_deployment

    if (done := finished_shard(kwargs)) is not None:
        return done
    params = {"search_kwargs": to_parameters(kwargs), "start": kwargs["start"], "count": kwargs["count"],
              "shard": kwargs["shard"], "shard_size": kwargs["count"]}
    run = run_deployment(deployment, parameters=params, timeout=None, poll_interval=2)
    if not run.state.is_completed():
        raise RuntimeError(f"shard {kwargs['shard']}: flow run '{run.name}' of {deployment} ended "
                           f"{run.state.type.value}: {run.state.message}")
    if (done := finished_shard(kwargs)) is None:
        raise RuntimeError(f"shard {kwargs['shard']}: {deployment} finished but the shard is not here; the "
                           "workers must share this work directory")
    return done


def to_parameters(kwargs: dict) -> dict:
    """Search arguments as flow-run parameters (JSON): the method's config as a mapping."""
    out = {k: v for k, v in kwargs.items() if k not in ("start", "count", "shard")}
    out["method_config"] = dataclasses.asdict(kwargs["method_config"])
    return out


def from_parameters(kwargs: dict) -> dict:
    """`to_parameters` undone: the method's config rebuilt from its mapping."""
    from search import METHODS

    config = kwargs["method_config"]
    if isinstance(config, dict):
        kwargs = {**kwargs, "method_config": METHODS[kwargs["method"]][1](**config)}
    return kwargs


def require_ray():
    """prefect-ray's task runner, or `RunnerUnavailable` saying how to install it."""
    try:
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise RunnerUnavailable("generation.runner 'ray' needs prefect-ray: pip install 'treeflow[ray]'") from None
    return RayTaskRunner


def _on_ray(address: str | None):
    RayTaskRunner = require_ray()  # noqa: N806

    def run(shards: list[dict], parallelism: int) -> list[dict]:
        @flow(name="generate-ray", task_runner=RayTaskRunner(address=address))
        def on_ray() -> list[dict]:
            return _waves([search_task.submit(**kwargs) for kwargs in wave]
                          for wave in _chunks(shards, parallelism))

        return on_ray()

    return run


@flow(name="generate")
def generate(search_kwargs: dict, start: int, count: int, shard: str, shard_size: int = 64, parallelism: int = 1,
             store_path: str | None = None) -> dict:
    """`fan_out` as a flow of its own (search keyword arguments as `tasks.search.run_search` takes them; the
    method's config may be a mapping). With no `store_path` the shards are only written, for a caller to
    ingest."""
    return fan_out(from_parameters(search_kwargs), start=start, count=count, shard=shard, shard_size=shard_size,
                   parallelism=parallelism, store_path=store_path)
