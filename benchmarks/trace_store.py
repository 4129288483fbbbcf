"""Trace-store scale: ingest and every reward view over millions of nodes of realistic search trees.

    python benchmarks/trace_store.py [--nodes 10000000] [--shards 10] [--workdir DIR]

Builds trees like MCTS / beam search leaves them (each tree 4-12 steps deep; at every depth a few
frontier nodes are expanded into 4-8 children; the last depth's nodes and some earlier leaves are
terminal, 30 % of the terminals correct, and whole trees with none), writes them as Parquet shards the
way search workers do, then prints:
- ingest rate: all shards loaded by `storage.store.ingest` in one transaction (target >= 1M nodes/s);
- each reward view computed over all nodes and written out as Parquet (streamed, as `treeflow export`
  does): seconds and the peak resident memory of the process that ran it (each view runs in its own
  process; targets <= 60 s and <= 4 GiB), and the same for the token-level value training set;
- the same Monte Carlo and Math-Shepherd targets computed by a straightforward per-tree Python loop on
  the first shard's nodes (a store of its own), against the two views on that store, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: the reward views (the issue's targets apply to these) ...
VIEWS = {
    "mc_targets": "SELECT * FROM mc_targets",
    "td_lambda_targets(0.9)": "SELECT * FROM td_lambda_targets(0.9)",
    "math_shepherd": "SELECT * FROM math_shepherd",
    "rest_mcts_values": "SELECT * FROM rest_mcts_values",
    "preference_pairs": "SELECT * FROM preference_pairs",
}
#: ... and a training-set view built on them, reported beside them
TRAINING_VIEWS = {"value_paths": "SELECT * FROM value_paths"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--workdir", default="work/bench-trace-store")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--view", default=None, help=argparse.SUPPRESS)  # run one view (in a child process)
    args = parser.parse_args()
    work = Path(args.workdir)
    if args.view:
        print(json.dumps(_materialise(work / "traces.duckdb", args.view)))
        return

    from rich.console import Console
    from rich.table import Table

    from storage import store

    console = Console(width=110)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    shards, n_nodes, n_trees = _write_shards(work / "shards", args.nodes, args.shards, args.seed)
    console.print(f"built {n_nodes:,} nodes in {n_trees:,} trees as {len(shards)} Parquet shards "
                  f"in {time.perf_counter() - t0:.0f} s")
    with store.connect(work / "traces.duckdb") as con:
        t0 = time.perf_counter()
        added = store.ingest(con, shards)
        ingest_s = time.perf_counter() - t0
    assert added == n_trees
    console.print(f"ingest: {n_nodes / ingest_s / 1e6:.2f}M nodes/s ({ingest_s:.1f} s, one transaction; "
                  f"target >= 1M/s: {'pass' if n_nodes / ingest_s >= 1e6 else 'FAIL'})")

    table = Table(title=f"reward views over {n_nodes:,} nodes (2 cores)")
    for col in ("view", "rows", "seconds", "peak RSS GiB", "<= 60 s, 4 GiB"):
        table.add_column(col, justify="left" if col == "view" else "right")
    for view in [*VIEWS, *TRAINING_VIEWS]:
        out = subprocess.run([sys.executable, __file__, "--workdir", str(work), "--view", view],
                             capture_output=True, text=True)
        if out.returncode != 0:
            table.add_row(view, "-", "-", "-", f"FAIL ({out.stderr.strip().splitlines()[-1][:40]})")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ok = r["seconds"] <= 60 and r["peak_gib"] <= 4
        verdict = ("pass" if ok else "FAIL") if view in VIEWS else "(training set)"
        table.add_row(view, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['peak_gib']:.2f}", verdict)
    console.print(table)

    subset = work / "first-shard.duckdb"
    with store.connect(subset) as con:
        store.ingest(con, shards[:1])
    py = _python_targets(subset)
    views_s = sum(_materialise(subset, v)["seconds"] for v in ("mc_targets", "math_shepherd"))
    console.print(f"per-tree Python loop over the first shard ({py['nodes']:,} nodes): MC targets and "
                  f"Math-Shepherd labels in {py['seconds']:.1f} s; the two views on the same nodes: "
                  f"{views_s:.1f} s ({py['seconds'] / views_s:.1f}x faster)")


def _write_shards(out: Path, total: int, n_shards: int, seed: int) -> tuple[list[Path], int, int]:
    """Random trees as shards of the store's schema; returns (shards, nodes, trees)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from storage.store import NODE_SCHEMA, PROBLEM_SCHEMA, TREE_SCHEMA

    rng = np.random.default_rng(seed)
    shapes = [_shape(rng) for _ in range(400)]  # tree shapes to draw from
    per_shard = total // n_shards
    shards, nodes_done, trees_done = [], 0, 0
    for s in range(n_shards):
        cols = {k: [] for k in ("tree", "node", "parent", "depth", "terminal")}
        n = 0
        while n < per_shard:
            parent, depth, terminal = shapes[rng.integers(len(shapes))]
            size = min(len(parent), per_shard - n) if s == n_shards - 1 else len(parent)
            cols["tree"].append(np.full(size, trees_done))
            cols["node"].append(np.arange(size))
            cols["parent"].append(parent[:size])
            cols["depth"].append(depth[:size])
            term = terminal[:size].copy()
            cols["terminal"].append(term)
            n += size
            trees_done += 1
        c = {k: np.concatenate(v) for k, v in cols.items()}
        m = len(c["node"])
        tree_ids = np.char.add("run/0/search/mcts_alpha/b/s0/p", c["tree"].astype(str))
        solvable = rng.random(trees_done + 1) < 0.7  # trees with no correct leaf at all too
        correct = c["terminal"] & (rng.random(m) < 0.3) & solvable[c["tree"]]
        value = np.round(rng.uniform(-1, 1, m), 4)
        answers = np.where(c["terminal"], "The answer is 42", None)
        nodes = pa.table({
            "tree_id": tree_ids, "node_id": c["node"].astype(np.int32), "parent_id": c["parent"].astype(np.int32),
            "depth": c["depth"].astype(np.int32),
            "step_text": np.where(c["node"] == 0, "", "12+30=42 (left: *2)\n"),
            "prior": rng.random(m), "value": value, "visits": rng.integers(0, 8, m).astype(np.int32),
            "value_sum": value, "tokens": rng.integers(8, 24, m).astype(np.int32), "logprob": -rng.random(m),
            "terminal": c["terminal"], "answer": answers,
            "correct": np.where(c["terminal"], correct, None),
        }, schema=NODE_SCHEMA)
        first = trees_done - len(cols["tree"])
        ids = np.arange(first, trees_done)
        trees = pa.table({
            "tree_id": np.char.add("run/0/search/mcts_alpha/b/s0/p", ids.astype(str)),
            "run_id": ["run"] * len(ids), "iteration": np.zeros(len(ids), np.int32),
            "stage": ["search"] * len(ids), "split": ["train"] * len(ids),
            "method": ["mcts_alpha"] * len(ids), "problem_id": np.char.add("p", ids.astype(str)),
            "policy": ["policy"] * len(ids), "value_model": ["value"] * len(ids), "answer": ["42"] * len(ids),
            "correct": rng.random(len(ids)) < 0.3, "generated_tokens": rng.integers(100, 2000, len(ids)),
            "value_states": rng.integers(10, 200, len(ids)), "chosen_path": [[0]] * len(ids),
            "budget": np.full(len(ids), 2048, np.int32), "seed": np.zeros(len(ids), np.int32),
            "checker": ["exact"] * len(ids),
        }, schema=TREE_SCHEMA)
        problems = pa.table({"problem_id": np.char.add("p", ids.astype(str)), "task": ["arithmetic"] * len(ids),
                             "question": ["12+30*2"] * len(ids), "gold": ["84"] * len(ids),
                             "prompt": ["Q: 12+30*2\n"] * len(ids)}, schema=PROBLEM_SCHEMA)
        shard = out / f"shard-{s:03d}"
        shard.mkdir(parents=True)
        for name, t in (("trees", trees), ("nodes", nodes), ("problems", problems)):
            pq.write_table(t, shard / f"{name}.parquet")
        shards.append(shard)
        nodes_done += m
    return shards, nodes_done, trees_done


def _shape(rng):
    """One tree: depth 4-12; at each depth up to 3 frontier nodes get 4-8 children (parents before children)."""
    import numpy as np

    parent, depth = [-1], [0]
    frontier = [0]
    max_depth = int(rng.integers(4, 13))
    for d in range(1, max_depth + 1):
        kids = []
        for p in frontier:
            for _ in range(int(rng.integers(4, 9))):
                parent.append(p)
                depth.append(d)
                kids.append(len(parent) - 1)
        frontier = list(rng.choice(kids, size=min(len(kids), int(rng.integers(1, 4))), replace=False))
    parent, depth = np.array(parent), np.array(depth)
    has_child = np.zeros(len(parent), bool)
    has_child[parent[1:]] = True
    terminal = ~has_child & ((depth == max_depth) | (rng.random(len(parent)) < 0.3))
    return parent, depth, terminal


def _materialise(store_path: Path, view: str) -> dict:
    import duckdb

    con = duckdb.connect(str(store_path), read_only=True)
    out = store_path.parent / "view-out.parquet"
    t0 = time.perf_counter()
    query = {**VIEWS, **TRAINING_VIEWS}[view]
    (rows,) = con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)").fetchone()
    seconds = time.perf_counter() - t0
    con.close()
    out.unlink()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"rows": rows, "seconds": seconds, "peak_gib": peak}


def _python_targets(store_path: Path) -> dict:
    """MC targets and Math-Shepherd labels by a plain per-tree loop (read the nodes, walk each leaf up)."""
    import duckdb

    t0 = time.perf_counter()  # reading the nodes out of the store counts: the views read them too
    con = duckdb.connect(str(store_path), read_only=True)
    rows = con.execute("SELECT tree_id, node_id, parent_id, terminal, correct FROM nodes").fetchall()
    con.close()
    trees: dict[str, list] = {}
    for tree_id, node, parent, terminal, correct in rows:
        trees.setdefault(tree_id, []).append((node, parent, terminal, correct))
    mc, shepherd = [], {}
    for tree_id, nodes in trees.items():
        parents = {n: p for n, p, _, _ in nodes}
        for leaf, _, terminal, correct in nodes:
            if not terminal:
                continue
            node = leaf
            while node != -1:
                if node != 0:
                    mc.append((tree_id, node, leaf, 1.0 if correct else -1.0))
                total, good = shepherd.get((tree_id, node), (0, 0))
                shepherd[(tree_id, node)] = (total + 1, good + bool(correct))
                node = parents[node]
    return {"nodes": len(rows), "seconds": time.perf_counter() - t0, "mc_rows": len(mc)}


if __name__ == "__main__":
    main()
