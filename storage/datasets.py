"""Training sets out of the store: a view as Parquet / JSON Lines, or as a `datasets.Dataset` for TRL.

Everything here opens the store read-only, so exporting never competes with the single writer.
"""

from __future__ import annotations

from pathlib import Path

from storage.store import connect


class UnknownRelation(LookupError):
    """A table or view name the store does not have."""


def relations(store_path: str | Path) -> list[str]:
    """The store's tables and views, by name."""
    with connect(store_path, read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]


def _select(store_path: str | Path, view: str, where: str | None) -> str:
    known = relations(store_path)
    if view not in known:
        raise UnknownRelation(f"{store_path}: no table or view '{view}' (known: {', '.join(known)})")
    return f'SELECT * FROM "{view}"' + (f" WHERE {where}" if where else "")


def export(store_path: str | Path, view: str, out: str | Path, fmt: str, where: str | None = None) -> int:
    """Write a table or view (optionally filtered by a SQL `where`) to `out`; returns the row count.

    The file appears complete or not at all: it is written beside `out` and renamed into place.
    """
    if fmt not in ("parquet", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}; known: parquet, jsonl")
    query = _select(store_path, view, where)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    options = "FORMAT parquet" if fmt == "parquet" else "FORMAT json"
    with connect(store_path, read_only=True) as con:
        n = con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
        con.execute(f"COPY ({query}) TO '{tmp}' ({options})")
    tmp.rename(out)
    return n


def load(store_path: str | Path, view: str, where: str | None = None):
    """A table or view as a `datasets.Dataset` (e.g. sft_traces for TRL's SFTTrainer)."""
    import datasets

    query = _select(store_path, view, where)
    with connect(store_path, read_only=True) as con:
        table = con.sql(query).to_arrow_table()
    return datasets.Dataset(table)


#: the value model's target methods, each as the SQL of its training paths (views value_paths*)
VALUE_TARGETS = ("monte_carlo", "math_shepherd_soft", "math_shepherd_hard", "td_lambda", "rest_mcts")


def value_view(method: str) -> str:
    """The view a value target method's paths come from (recorded with each trained model)."""
    return {"td_lambda": "value_paths_td", "rest_mcts": "value_paths_rest_mcts"}.get(method, "value_paths")


def value_paths_query(method: str, lam: float = 0.9, *, hard: bool = True) -> str:
    """SQL of one method's value-training paths: tree_id, leaf_id, steps, targets (on [-1, 1]) and, with
    `hard`, hard_targets (+1 if a correct leaf lies below the step, else -1: what held-out ranking is
    scored on; for TD(lambda) and ReST-MCTS* they cost a join with value_paths, so training leaves them out).

    monte_carlo and math_shepherd_soft are the same numbers here: the fraction of correct leaves below a
    step (Math-Shepherd's soft estimate) is the Monte Carlo mean outcome on a 0 / 1 scale.
    """
    if method in ("monte_carlo", "math_shepherd_soft"):
        return "SELECT tree_id, leaf_id, steps, targets, hard_targets FROM value_paths"
    if method == "math_shepherd_hard":
        return "SELECT tree_id, leaf_id, steps, hard_targets AS targets, hard_targets FROM value_paths"
    if method == "td_lambda":
        source = f"value_paths_td({float(lam)!r})"
    elif method == "rest_mcts":
        source = "value_paths_rest_mcts"
    else:
        raise ValueError(f"unknown value target method {method!r} (known: {', '.join(VALUE_TARGETS)})")
    if not hard:
        return f"SELECT tree_id, leaf_id, steps, targets FROM {source}"
    return (f"SELECT x.tree_id, x.leaf_id, x.steps, x.targets, v.hard_targets FROM {source} x "
            "JOIN value_paths v USING (tree_id, leaf_id)")
