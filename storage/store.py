"""The DuckDB trace store: migrations, shard ingest, read-only queries.

One process writes a store file (DuckDB's rule). Search workers write Parquet shards with
`write_shard`; `ingest` loads shards in one transaction, skipping trees already present, so
re-ingesting is a no-op and a bad shard leaves the store unchanged.
"""

from __future__ import annotations

import importlib.resources
import json
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

PACKAGE = importlib.resources.files("storage")


class ShardError(ValueError):
    """A shard file that does not match the trace store's schema."""


class RunConflict(ValueError):
    """A run id that the store already holds with another kind or configuration."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in order."""
    out = []
    for f in sorted(PACKAGE.joinpath("migrations").iterdir(), key=lambda p: p.name):
        if f.name.endswith(".sql"):
            version, _, name = f.name.removesuffix(".sql").partition("_")
            out.append((int(version), name, f.read_text()))
    return out


def views() -> list[str]:
    """The SQL of every view file."""
    return [f.read_text() for f in sorted(PACKAGE.joinpath("views").iterdir(), key=lambda p: p.name)
            if f.name.endswith(".sql")]


def connect(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a store; a read-write open applies pending migrations and (re)creates the views."""
    path = Path(path)
    if read_only:
        if not path.is_file():
            raise FileNotFoundError(f"trace store not found: {path}")
        return duckdb.connect(str(path), read_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    migrate(con)
    return con


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations a store has not recorded yet, each in its own transaction."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR,"
                " applied_at TIMESTAMP DEFAULT current_timestamp)")
    done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        con.execute("BEGIN")
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        con.execute("COMMIT")
        applied.append(version)
    for sql in views():
        con.execute(sql)
    return applied


# --- shards -------------------------------------------------------------------------------------------

TREE_SCHEMA = pa.schema([
    ("tree_id", pa.string()), ("run_id", pa.string()), ("iteration", pa.int32()), ("stage", pa.string()),
    ("split", pa.string()), ("method", pa.string()), ("problem_id", pa.string()), ("policy", pa.string()),
    ("value_model", pa.string()), ("answer", pa.string()), ("correct", pa.bool_()),
    ("generated_tokens", pa.int64()), ("value_states", pa.int64()), ("chosen_path", pa.list_(pa.int32())),
    ("budget", pa.int32()), ("seed", pa.int32()), ("checker", pa.string()),
])
NODE_SCHEMA = pa.schema([
    ("tree_id", pa.string()), ("node_id", pa.int32()), ("parent_id", pa.int32()), ("depth", pa.int32()),
    ("step_text", pa.string()), ("prior", pa.float64()), ("value", pa.float64()), ("visits", pa.int32()),
    ("value_sum", pa.float64()), ("tokens", pa.int32()), ("logprob", pa.float64()), ("terminal", pa.bool_()),
    ("answer", pa.string()), ("correct", pa.bool_()),
])
PROBLEM_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("task", pa.string()), ("question", pa.string()), ("gold", pa.string()),
    ("prompt", pa.string()),
])
SHARD_TABLES = {"trees": TREE_SCHEMA, "nodes": NODE_SCHEMA, "problems": PROBLEM_SCHEMA}


def write_shard(directory: str | Path, *, trees: list[dict], nodes: list[dict], problems: list[dict]) -> Path:
    """Write one shard (a directory of three Parquet files), atomically; return its path."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    for table, rows in (("trees", trees), ("nodes", nodes), ("problems", problems)):
        pq.write_table(pa.Table.from_pylist(rows, schema=SHARD_TABLES[table]), tmp / f"{table}.parquet")
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def _check_shard(shard: Path) -> None:
    for table, schema in SHARD_TABLES.items():
        f = shard / f"{table}.parquet"
        if not f.is_file():
            raise ShardError(f"{f}: missing from shard")
        try:
            found = pq.read_schema(f)
        except Exception as e:  # pyarrow raises several types for unreadable files
            raise ShardError(f"{f}: not a readable Parquet file ({e})") from None
        for col in schema:
            if col.name not in found.names:
                raise ShardError(f"{f}: missing column '{col.name}'")
            if not found.field(col.name).type.equals(col.type):
                raise ShardError(f"{f}: column '{col.name}' has type {found.field(col.name).type}, "
                                 f"expected {col.type}")


def _files(shards: list[Path], table: str) -> str:
    """A SQL list literal of the shards' Parquet files for `table`."""
    return "[" + ", ".join("'" + str(s / f"{table}.parquet").replace("'", "''") + "'" for s in shards) + "]"


def ingest(con: duckdb.DuckDBPyConnection, shards: Iterable[str | Path]) -> int:
    """Load shards in one transaction; trees already in the store are skipped. Returns trees added.

    Every shard is checked before anything is written. When every tree in the shards is new and appears
    once (the usual case), all shards go in with one bulk insert per table; otherwise shard by shard,
    each tree only the first time it is seen.
    """
    shards = [Path(s) for s in shards]
    for s in shards:
        _check_shard(s)
    if not shards:
        return 0
    tree_cols, node_cols = ", ".join(TREE_SCHEMA.names), ", ".join(NODE_SCHEMA.names)
    con.execute("BEGIN")
    try:
        total, distinct, new = con.execute(
            f"SELECT count(*), count(DISTINCT tree_id), count(DISTINCT tree_id) FILTER "
            f"(WHERE tree_id NOT IN (SELECT tree_id FROM trees)) FROM read_parquet({_files(shards, 'trees')})"
        ).fetchone()
        if total == distinct == new:
            con.execute(f"INSERT INTO trees ({tree_cols}, shard) SELECT {tree_cols}, "
                        "regexp_replace(filename, '/trees[.]parquet$', '') "
                        f"FROM read_parquet({_files(shards, 'trees')}, filename = true)")
            con.execute(f"INSERT INTO nodes ({node_cols}) SELECT {node_cols} "
                        f"FROM read_parquet({_files(shards, 'nodes')})")
            added = total
        else:
            added = sum(_ingest_one(con, s) for s in shards)
        con.execute(f"INSERT INTO problems SELECT DISTINCT * FROM read_parquet({_files(shards, 'problems')}) "
                    "WHERE problem_id NOT IN (SELECT problem_id FROM problems)")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return added


def _ingest_one(con: duckdb.DuckDBPyConnection, shard: Path) -> int:
    """One shard's trees that the store does not have yet (inside the caller's transaction)."""
    t, n = _files([shard], "trees"), _files([shard], "nodes")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _new AS SELECT DISTINCT tree_id FROM read_parquet({t}) "
                "WHERE tree_id NOT IN (SELECT tree_id FROM trees)")
    added = con.execute("SELECT count(*) FROM _new").fetchone()[0]
    cols = ", ".join(TREE_SCHEMA.names)
    con.execute(f"INSERT INTO trees ({cols}, shard) SELECT {cols}, ? FROM read_parquet({t}) "
                "WHERE tree_id IN (SELECT tree_id FROM _new)", [str(shard)])
    cols = ", ".join(NODE_SCHEMA.names)
    con.execute(f"INSERT INTO nodes ({cols}) SELECT {cols} FROM read_parquet({n}) "
                "WHERE tree_id IN (SELECT tree_id FROM _new)")
    con.execute("DROP TABLE _new")
    return added


def record_run(con: duckdb.DuckDBPyConnection, run_id: str, kind: str, config: dict,
               code_version: str | None = None) -> None:
    """Insert a run row once. Recording the same run again (a restarted run) is a no-op; the same run id with
    another kind or configuration raises `RunConflict`, since its trees would mix with the first run's."""
    found = con.execute("SELECT kind, config FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if found is not None and (found[0] != kind or json.loads(found[1]) != json.loads(json.dumps(config))):
        raise RunConflict(f"run id '{run_id}' is already in the store with another "
                          f"{'kind' if found[0] != kind else 'configuration'}; restart it with the same "
                          "configuration to resume it, or choose a new run id")
    con.execute("INSERT INTO runs (run_id, kind, config, code_version) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [run_id, kind, json.dumps(config), code_version])


def record_snapshot(con: duckdb.DuckDBPyConnection, snapshot: dict) -> None:
    """Record (or, for a re-run training, replace) which rows trained which model version."""
    row = {**snapshot, "query_params": json.dumps(snapshot.get("query_params"))}
    columns, marks = ", ".join(row), ", ".join("?" * len(row))
    con.execute(f"INSERT OR REPLACE INTO training_snapshots ({columns}) VALUES ({marks})", list(row.values()))


def rows_digest(rows: list) -> str:
    """SHA-256 of training rows in order, as JSON: the fingerprint a snapshot keeps."""
    import hashlib

    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def query(path: str | Path, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Run one query on a read-only connection; returns (column names, rows)."""
    with connect(path, read_only=True) as con:
        cur = con.execute(sql, params or [])
        return [d[0] for d in cur.description], cur.fetchall()
