"""The DuckDB trace store: migrations, shard ingest, and the MC / SFT / state views on a hand-made tree."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.fakes import ScriptedPolicy
from problems.arithmetic import generate
from search import SamplingConfig, self_consistency
from storage import store
from storage.traces import problem_row, result_rows


def test_migrations_on_a_blank_file(tmp_path):
    con = store.connect(tmp_path / "s.duckdb")
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"runs", "problems", "trees", "nodes", "evaluations", "schema_migrations"} <= tables
    cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                      "table_name = 'nodes' ORDER BY ordinal_position").fetchall()]
    assert cols == ["tree_id", "node_id", "parent_id", "depth", "step_text", "prior", "value", "visits",
                    "value_sum", "tokens", "logprob", "terminal", "answer", "correct"]
    versions = con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert versions == [(v,) for v in range(1, 7)]
    snapshot_cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                               "table_name = 'training_snapshots'").fetchall()}
    assert {"model_uri", "query", "query_params", "tree_ids", "rows_sha256", "n_rows"} <= snapshot_cols
    eval_cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                           "table_name = 'evaluations'").fetchall()}
    assert {"accuracy", "tokens_per_problem", "value_auc", "budget", "seed", "prefill_tokens_per_problem",
            "value_tokens_per_problem", "policy_calls", "value_calls", "checker"} <= eval_cols
    tree_cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                           "table_name = 'trees'").fetchall()}
    assert {"budget", "seed", "checker"} <= tree_cols
    comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'nodes'").fetchone()[0]
    assert "root = node 0" in comment
    assert store.migrate(con) == []  # applying again does nothing
    con.close()


def _shard(tmp_path, name="s1", index=0):
    """A shard with one Self-Consistency tree on a real arithmetic problem, scripted steps."""
    problem = generate(index + 1, split="test")[index]
    gold = int(problem.answer)
    script = {problem.prompt: [("a\n", -0.1), ("b\n", -0.2), ("a\n", -0.1)],
              problem.prompt + "a\n": [(f"The answer is {gold}\n", -0.1)],
              problem.prompt + "b\n": [(f"The answer is {gold + 1}\n", -0.1)]}
    propose = ScriptedPolicy(script).propose_steps
    [result] = self_consistency([problem.prompt], SamplingConfig(n=3), propose=propose)
    tree, nodes = result_rows(result, problem, tree_id=f"run/0/eval/sc/{problem.id}", run_id="run",
                              iteration=0, stage="search", split="test", method="self_consistency", policy="p",
                              value_model=None)
    return store.write_shard(tmp_path / name, trees=[tree], nodes=nodes, problems=[problem_row(problem)]), problem


def test_ingest_is_idempotent(tmp_path):
    shard, _ = _shard(tmp_path)
    with store.connect(tmp_path / "s.duckdb") as con:
        assert store.ingest(con, [shard]) == 1
        assert store.ingest(con, [shard]) == 0
        assert con.execute("SELECT count(*) FROM nodes").fetchone()[0] == 5
        assert con.execute("SELECT count(*) FROM trees").fetchone()[0] == 1


def test_a_batch_mixing_new_and_known_trees_adds_each_tree_once(tmp_path):
    first, _ = _shard(tmp_path, "s1", 0)
    second, _ = _shard(tmp_path, "s2", 1)
    again, _ = _shard(tmp_path, "s3", 0)  # the first shard's tree, written again by a retried worker
    with store.connect(tmp_path / "s.duckdb") as con:
        assert store.ingest(con, [first]) == 1  # all new: the bulk path
        assert store.ingest(con, [again, second]) == 1  # one known, one new: shard by shard
        assert store.ingest(con, [second, again]) == 0
        rows = con.execute("SELECT tree_id, shard, (SELECT count(*) FROM nodes n WHERE n.tree_id = t.tree_id) "
                           "FROM trees t ORDER BY shard").fetchall()
        assert [(shard, n) for _, shard, n in rows] == [(str(first), 5), (str(second), 5)]
        duplicates = con.execute("SELECT count(*) FROM (SELECT tree_id, node_id FROM nodes GROUP BY ALL "
                                 "HAVING count(*) > 1)").fetchone()[0]
        assert duplicates == 0


def test_views_on_a_hand_made_tree(tmp_path):
    shard, problem = _shard(tmp_path)
    with store.connect(tmp_path / "s.duckdb") as con:
        store.ingest(con, [shard])
        # tree: 0 root; 1 "a" (2 samples) -> 2 correct; 3 "b" -> 4 wrong
        mc = con.execute("SELECT node_id, leaf_id, target FROM mc_targets ORDER BY node_id").fetchall()
        assert mc == [(1, 2, 1.0), (2, 2, 1.0), (3, 4, -1.0), (4, 4, -1.0)]
        sft = con.execute("SELECT prompt, completion FROM sft_traces").fetchall()
        assert sft == [(problem.prompt, f"a\nThe answer is {problem.answer}\n")]
        states = dict(con.execute("SELECT node_id, state FROM node_states").fetchall())
        assert states[0] == problem.prompt
        assert states[4] == problem.prompt + f"b\nThe answer is {int(problem.answer) + 1}\n"
        correct = con.execute("SELECT node_id, correct FROM nodes WHERE terminal ORDER BY 1").fetchall()
        assert correct == [(2, True), (4, False)]


def test_a_shard_with_a_wrong_schema_is_rejected_and_changes_nothing(tmp_path):
    good, _ = _shard(tmp_path, "good")
    bad, _ = _shard(tmp_path, "bad")
    table = pq.read_table(bad / "nodes.parquet")
    as_text = pa.array([str(v) for v in table["visits"].to_pylist()])
    pq.write_table(table.set_column(table.schema.get_field_index("visits"), "visits", as_text),
                   bad / "nodes.parquet")
    with store.connect(tmp_path / "s.duckdb") as con:
        with pytest.raises(store.ShardError, match=r"nodes\.parquet: column 'visits' has type string"):
            store.ingest(con, [good, bad])
        assert con.execute("SELECT count(*) FROM trees").fetchone()[0] == 0
        (bad / "trees.parquet").write_bytes(b"not parquet")
        with pytest.raises(store.ShardError, match=r"trees\.parquet: not a readable Parquet file"):
            store.ingest(con, [bad])


def test_read_only_queries_cannot_write(tmp_path):
    path = tmp_path / "s.duckdb"
    store.connect(path).close()
    cols, rows = store.query(path, "SELECT count(*) AS n FROM runs")
    assert cols == ["n"] and rows == [(0,)]
    with pytest.raises(duckdb.Error):
        store.query(path, "DELETE FROM runs")
    with pytest.raises(FileNotFoundError):
        store.query(tmp_path / "missing.duckdb", "SELECT 1")


def test_a_store_made_before_a_migration_is_upgraded(tmp_path):
    import duckdb as db

    path = tmp_path / "old.duckdb"
    version, name, sql = store.migrations()[0]
    with db.connect(str(path)) as con:  # a store that only ever saw migration 1
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR,"
                    " applied_at TIMESTAMP DEFAULT current_timestamp)")
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        con.execute("INSERT INTO evaluations (run_id, iteration, method, split, n_problems, accuracy, "
                    "tokens_per_problem, value_states_per_problem) VALUES ('r', 0, 'greedy', 'test', 1, 1, 5, 0)")
    with store.connect(path) as con:
        versions = con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert versions == [(v,) for v in range(1, 7)]
        # migration 3 rebuilds `evaluations` (budget and seed per row): the old rows come along
        assert con.execute("SELECT method, accuracy, value_auc, budget, seed, value_calls FROM evaluations"
                           ).fetchall() == [("greedy", 1.0, None, None, 0, None)]
