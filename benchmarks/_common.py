"""What the benchmarks share: a small trained tiny policy, so their figures are reproducible anywhere, one run's
config with the command line's `--set` changes, and a policy's greedy answers decoded exactly as the flows
evaluate greedy."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path


def small_policy() -> str:
    """A tiny policy trained on 4,096 demonstrations (about a minute here; cached across runs)."""
    from models.tiny import TinyRecipe, bootstrap
    from models.training import SFTSettings

    recipe = TinyRecipe(n_demos=4096, sft=SFTSettings(epochs=1, learning_rate=2e-3, batch_size=64, max_length=64))
    return str(bootstrap(recipe, tempfile.gettempdir() + "/treeflow-bench-cache"))


def run_config(path: str, changes: list[str], run: dict):
    """The config file at `path` with the `--set KEY=VALUE` `changes` and the run's own settings (workdir, seed,
    run id); a wrong key or value exits naming it."""
    from flows.config import ConfigError, load_config, parse_overrides

    try:
        return load_config(path, {**parse_overrides(changes), **run})
    except ConfigError as e:
        raise SystemExit(str(e)) from None


def greedy_answers(config, policy: str, count: int, shard: str, run_id: str = "retest",
                   iteration: int = 0) -> dict[str, bool]:
    """`policy` decoded greedily on the first `count` test problems exactly as the flows evaluate greedy
    (`tasks.search.run_search` with the flow's arguments and the greedy method config): whether each answer is
    right, by problem id. The shard (trees, nodes) is written to `shard`; `run_id` and `iteration` only label its
    rows. The answers are kept under `<workdir>/retest/answers`, keyed by a hash of the policy directory's files
    and of every setting the decode reads, so another process asking again decodes nothing; they are checked
    afresh each time."""
    import pyarrow.parquet as pq

    from flows.config import method_configs
    from flows.flywheel import search_kwargs
    from problems import select_problems
    from tasks.search import run_search

    kwargs = search_kwargs(config, run_id, policy, None)
    method_config = method_configs(config)["greedy"]
    settings = {k: v for k, v in kwargs.items() if k not in ("policy_path", "run_id")}
    if not Path(policy).is_dir():
        raise SystemExit(f"{policy}: not a policy directory")
    digest = hashlib.sha256(json.dumps([settings, count, repr(method_config)], sort_keys=True,
                                       default=str).encode())
    for path in sorted(p for p in Path(policy).rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(policy)}\0".encode())
        digest.update(path.read_bytes())
    cached = Path(config.paths["root"], "retest", "answers", f"{digest.hexdigest()[:16]}.json")
    if cached.is_file():
        answers = json.loads(cached.read_text())
    else:
        out = run_search(**kwargs, split="test", start=0, count=count, method="greedy",
                         method_config=method_config, iteration=iteration, stage="eval", shard=shard)
        trees = pq.read_table(Path(out["shard"], "trees.parquet"), columns=["problem_id", "answer"])
        answers = {t["problem_id"]: t["answer"] for t in trees.to_pylist()}
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.write_text(json.dumps(answers))
        partial.replace(cached)  # whole or absent
    problems = select_problems(config.task.name, "test", 0, count, config.task.options)
    return {p.id: p.check(answers[p.id]) for p in problems}
