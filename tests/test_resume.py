"""Resume and retries: finished work is found on disk, a run id is one configuration, a locked store is
waited for."""

import subprocess
import sys
import time

import pytest
from test_store import _shard

from search import MCTSAlphaConfig, SamplingConfig
from storage import store
from tasks import resume


def test_a_marker_is_read_back_only_for_the_same_inputs(tmp_path):
    assert resume.done(tmp_path, "k") is None  # never finished
    resume.finish(tmp_path, "k", {"n": 1, "costs": [[None, 2]]})
    assert resume.done(tmp_path, "k") == {"n": 1, "costs": [[None, 2]]}
    assert resume.done(tmp_path, "other inputs") is None
    (tmp_path / resume.MARKER).write_text("{half a reco")  # torn by a crash: done again
    assert resume.done(tmp_path, "k") is None
    assert resume.fingerprint(a=1, b=MCTSAlphaConfig()) == resume.fingerprint(b=MCTSAlphaConfig(), a=1)
    assert resume.fingerprint(a=1, b=MCTSAlphaConfig()) != resume.fingerprint(a=1, b=MCTSAlphaConfig(k=3))
    # a model treeflow trained is known by its training's fingerprint, anything else by its path
    resume.finish(tmp_path, "k", {})
    assert resume.identity(str(tmp_path)) == "k" and resume.identity("org/model") == "org/model"


def test_a_finished_shard_is_not_searched_again(prefect_harness, tmp_path, tiny_policy_dir):
    from tasks.search import search_task

    kwargs = dict(task_name="arithmetic", task_options={}, split="test", start=0, count=3,
                  method="self_consistency", method_config=SamplingConfig(n=3, max_depth=4),
                  policy_path=str(tiny_policy_dir),
                  value_path=None, temperature=0.7, max_step_tokens=24, max_batch_rows=512, batch_size=3, seed=1,
                  run_id="r", iteration=0, stage="eval", budgets=[40, 80], shard=str(tmp_path / "shard"))
    first = search_task(**kwargs)
    written = (tmp_path / "shard" / "trees.parquet").stat().st_mtime_ns
    again = search_task(**kwargs, torch_threads=1)  # how it runs is not what it finds
    assert again == first and set(again["costs"]) == {40, 80}  # budgets come back as numbers
    assert (tmp_path / "shard" / "trees.parquet").stat().st_mtime_ns == written
    # other inputs: searched again, and the shard replaced
    other = search_task(**{**kwargs, "seed": 2})
    assert (tmp_path / "shard" / "trees.parquet").stat().st_mtime_ns != written
    assert other["shard"] == first["shard"] and other["trees"] == 6


def test_a_run_id_holds_one_configuration(tmp_path):
    with store.connect(tmp_path / "s.duckdb") as con:
        store.record_run(con, "r", "flywheel", {"seed": 0, "task": {"name": "arithmetic"}})
        store.record_run(con, "r", "flywheel", {"task": {"name": "arithmetic"}, "seed": 0})  # a restart
        with pytest.raises(store.RunConflict, match="'r' is already in the store with another configuration"):
            store.record_run(con, "r", "flywheel", {"seed": 1, "task": {"name": "arithmetic"}})
        with pytest.raises(store.RunConflict, match="another kind"):
            store.record_run(con, "r", "rest_em", {"seed": 0, "task": {"name": "arithmetic"}})
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)


HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_ingest_waits_for_another_writer_and_then_loads(prefect_harness, tmp_path):
    """A second process holds the store's write lock for 3 s: the ingest task fails, backs off, retries,
    and loads the shard once the lock is free. A bad shard is not retried."""
    from tasks.store import ingest_task

    path = tmp_path / "s.duckdb"
    with store.connect(path):
        pass  # migrated
    shard, _ = _shard(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), "3"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    t0 = time.perf_counter()
    state = ingest_task(str(path), [str(shard)], return_state=True)
    waited = time.perf_counter() - t0
    holder.wait(10)
    assert state.is_completed() and state.result() == 1
    assert waited >= 1.5  # it waited for the lock rather than loading through it
    _, rows = store.query(path, "SELECT count(*) FROM trees")
    assert rows == [(1,)]
    (tmp_path / "bad").mkdir()
    t0 = time.perf_counter()
    state = ingest_task(str(path), [str(tmp_path / "bad")], return_state=True)
    assert state.is_failed() and time.perf_counter() - t0 < 1.5
    assert isinstance(state.result(raise_on_failure=False), store.ShardError)
