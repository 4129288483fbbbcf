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
