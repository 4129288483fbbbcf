"""treeflow as a service, for real: `treeflow serve` with its own Prefect server on 127.0.0.1 runs the
flywheel when its schedule is due and logs to an MLflow server; a flywheel killed with SIGKILL in the
middle of generation and started again ends as if it had never been interrupted."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml

from flows.config import (
    EvaluationSettings,
    FlywheelConfig,
    GenerationSettings,
    TaskSettings,
    TrainingPlacement,
    ValueBootstrap,
)
from flows.service import free_port, prefect_server, stop_group, wait_healthy
from models.errors import resolve_model
from models.training import SFTSettings, ValueSettings
from search import MCTSAlphaConfig
from storage import store

TREEFLOW = str(Path(sys.executable).with_name("treeflow"))


def _config(path: Path, workdir: Path, tiny_recipe, tiny_policy_dir, **over) -> Path:
    """A flywheel small enough to run in seconds, as the YAML file a user would write."""
    over = {"cache_dir": str(tiny_policy_dir.parent.parent), "generation": GenerationSettings(shard_size=2),
            "evaluation": EvaluationSettings(token_budget=60, max_samples=4, methods=["greedy", "mcts_alpha"]),
            **over}
    config = FlywheelConfig(
        workdir=str(workdir), iterations=1, batch_size=2, tiny=tiny_recipe,
        task=TaskSettings(train_per_iteration=8, test_size=4), value=ValueBootstrap(problems=4, rollouts=2),
        search=MCTSAlphaConfig(simulations=2, k=2, max_depth=5),
        sft=SFTSettings(max_steps=2, batch_size=8), mix_demos=8,
        value_training=ValueSettings(max_steps=2, batch_size=8), **over)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    return {**env, **extra}


def _start(argv: list[str], log: Path, **env) -> subprocess.Popen:
    """Start `argv` in its log's directory (so nothing it writes by default lands in the repository)."""
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=_env(**env), cwd=log.parent)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1 (SQLite backend, proxied artifact store)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    process = _start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                      "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'm.db'}",
                      "--artifacts-destination", str(root / "artifacts")], root / "server.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", 120, process, root / "server.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(process, grace=30)


def test_serve_runs_the_flywheel_when_its_schedule_is_due(tmp_path, monkeypatch, mlflow_server, tiny_recipe,
                                                          tiny_policy_dir):
    workdir = tmp_path / "work"
    # every shard of problems a run of the served `generate` deployment, two at a time, and each iteration's
    # training a run of the `train` deployment (as on a GPU work pool)
    # (greedy alone is evaluated: every run of a deployment is a process of its own, ~10 s to start here)
    config = _config(tmp_path / "config.yaml", workdir, tiny_recipe, tiny_policy_dir,
                     generation=GenerationSettings(shard_size=4, parallelism=2, runner="deployment"),
                     training=TrainingPlacement(runner="deployment"),
                     evaluation=EvaluationSettings(token_budget=60, max_samples=4, methods=["greedy"]))
    port = free_port()
    # once the server is up and the deployments are in: a schedule registered after its anchor first fires an
    # interval (a day) later. 20 s was enough on the faster machines; an AVX2 EPYC here took longer to start
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    log = tmp_path / "serve.log"
    serve = _start([TREEFLOW, "serve", "--config", str(config), "--port", str(port), "--interval", "86400",
                    "--anchor", due.isoformat()], log, MLFLOW_TRACKING_URI=mlflow_server,
                   PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_RUNNER_POLL_FREQUENCY="1")
    api = f"http://127.0.0.1:{port}/api"
    try:
        run = _wait_for_a_finished_run(api, serve, log, timeout=600)
        shards, trainings = _flow_runs(api, "generate"), _flow_runs(api, "train")
    finally:
        stop_group(serve, grace=30)
    assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{_tail(log)}"
    assert run["auto_scheduled"]  # the schedule started it, not a person
    expected = dt.datetime.fromisoformat(run["expected_start_time"])
    assert abs((expected - due).total_seconds()) < 1
    assert dt.datetime.fromisoformat(run["start_time"]) >= expected - dt.timedelta(seconds=1)
    assert {r["state"]["type"] for r in shards + trainings} == {"COMPLETED"}
    starts = {}
    for r in shards:
        key = (r["parameters"]["search_kwargs"]["stage"], r["parameters"]["search_kwargs"]["iteration"])
        starts.setdefault(key, []).append(r["parameters"]["start"])
    # 4 bootstrap problems, 4 test problems per iteration, 8 training problems: 4 to a shard
    assert {k: sorted(v) for k, v in starts.items()} == {
        ("bootstrap", 0): [0], ("eval", 0): [0], ("eval", 1): [0], ("search", 1): [4, 8]}
    # the first value model and iteration 1's models, each trained by a run of the `train` deployment
    assert sorted((r["parameters"]["iteration"], r["parameters"]["value_out"] is None) for r in trainings) == [
        (0, False), (1, True)]
    # its runs are in the MLflow server, its models in the server's registry, its trees in the store
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("treeflow").experiment_id
    [parent] = client.search_runs([experiment], "tags.`treeflow.kind` = 'flywheel'")
    run_id = parent.data.tags["treeflow.run_id"]
    names = {r.info.run_name for r in client.search_runs([experiment])}
    assert {run_id, f"{run_id}/iteration-0", f"{run_id}/iteration-1", f"{run_id}/iteration-1/sft",
            f"{run_id}/iteration-1/value"} <= names
    assert "greedy/accuracy" in parent.data.metrics
    [version] = client.search_model_versions("name = 'treeflow-policy'")
    assert version.tags["treeflow.run_id"] == run_id
    monkeypatch.setenv("TREEFLOW_MODEL_CACHE", str(tmp_path / "model-cache"))
    mlflow.set_tracking_uri(mlflow_server)  # the version's files come back through the server's artifact proxy
    local = Path(resolve_model(f"models:/treeflow-policy/{version.version}"))
    trained = workdir / "models" / run_id / "policy-it1"
    assert (local / "config.json").read_text() == (trained / "config.json").read_text()
    _, rows = store.query(workdir / "traces.duckdb", "SELECT stage, iteration, count(*) FROM trees "
                                                     "WHERE run_id = ? GROUP BY ALL ORDER BY ALL", [run_id])
    assert rows == [("bootstrap", 0, 4), ("eval", 0, 4), ("eval", 1, 4), ("search", 1, 8)]
    with pytest.raises(OSError):  # `treeflow serve` stopped its Prefect server on the way out
        urllib.request.urlopen(f"{api}/health", timeout=2)


def _flow_runs(api: str, flow: str, states: tuple[str, ...] | None = None) -> list[dict]:
    """The runs of `flow` (in these state types) that the Prefect server at `api` knows."""
    body = {"flows": {"name": {"any_": [flow]}}}
    if states:
        body["flow_runs"] = {"state": {"type": {"any_": list(states)}}}
    request = urllib.request.Request(f"{api}/flow_runs/filter", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_a_finished_run(api: str, serve: subprocess.Popen, log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.poll() is None, f"treeflow serve exited:\n{_tail(log)}"
        try:
            runs = _flow_runs(api, "flywheel", ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"))
        except OSError:  # the server is still starting
            runs = []
        if runs:
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"no flow run finished within {timeout} s; the server's flow runs:\n{_runs_seen(api)}\n"
                         f"{_tail(log)}")


def _runs_seen(api: str) -> str:
    """Every flow run the server knows, one line each (where a flywheel that did not finish got to)."""
    def post(path: str, body: dict) -> list[dict]:
        request = urllib.request.Request(f"{api}/{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    try:
        flows = {f["id"]: f["name"] for f in post("flows/filter", {})}
        runs = post("flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC"})
    except OSError as e:
        return f"(the server did not answer: {e})"
    return "\n".join(f"  {flows.get(r['flow_id'])} {r['name']}: {r['state']['type']} ({r['state']['name']}), "
                     f"expected {r['expected_start_time']}, started {r['start_time']}, ended {r['end_time']}"
                     for r in runs)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A real Prefect server on 127.0.0.1 for the `treeflow` processes below."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


SEARCH_MARKERS = "shards/nightly-1/it1-search-mcts_alpha-*/treeflow_result.json"
SAME = ("SELECT t.tree_id, t.correct, t.generated_tokens, t.answer, count(n.node_id), sum(n.visits), "
        "round(sum(n.value_sum), 4) FROM trees t JOIN nodes n USING (tree_id) WHERE t.run_id = ? "
        "GROUP BY ALL ORDER BY t.tree_id")


def test_a_flywheel_killed_mid_generation_resumes_to_the_uninterrupted_result(tmp_path, prefect_api, tiny_recipe,
                                                                               tiny_policy_dir):
    work = {name: tmp_path / name for name in ("whole", "killed")}
    configs = {}
    for name, w in work.items():  # each its own cache (for the bootstrap value model), sharing the tiny policy
        (w / "cache").mkdir(parents=True)
        (w / "cache" / tiny_policy_dir.parent.name).symlink_to(tiny_policy_dir.parent)
        configs[name] = _config(tmp_path / f"{name}.yaml", w, tiny_recipe, tiny_policy_dir, run_id="nightly-1",
                                seed=5, cache_dir=str(w / "cache"))

    def flywheel(name: str, log: str) -> subprocess.Popen:
        return _start([TREEFLOW, "flywheel", "--config", str(configs[name])], tmp_path / log,
                      PREFECT_API_URL=prefect_api)

    whole = flywheel("whole", "whole.log")
    assert whole.wait(300) == 0, _tail(tmp_path / "whole.log")
    # the same run in another work directory, killed once the first of its four training shards is written
    killed = flywheel("killed", "killed.log")
    first = _wait_for_a_shard(work["killed"], killed, tmp_path / "killed.log", timeout=300)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert 1 <= len(list(work["killed"].glob(SEARCH_MARKERS))) < 4  # some shards done, some not
    path = work["killed"] / "traces.duckdb"
    assert store.query(path, "SELECT count(*) FROM trees WHERE stage = 'search'")[1] == [(0,)]  # none ingested
    written = first.stat().st_mtime_ns
    resumed = flywheel("killed", "resumed.log")
    assert resumed.wait(300) == 0, _tail(tmp_path / "resumed.log")
    assert first.stat().st_mtime_ns == written  # the finished shard was not searched again
    # every training problem searched exactly once, and the store as the uninterrupted run left it
    _, counts = store.query(path, "SELECT count(*), count(DISTINCT problem_id) FROM trees WHERE stage = 'search'")
    assert counts == [(8, 8)]
    same = {name: store.query(w / "traces.duckdb", SAME, ["nightly-1"])[1] for name, w in work.items()}
    assert same["killed"] == same["whole"] and len(same["whole"]) == 4 + 8 + 8 + 8
    for sql in ("SELECT iteration, method, accuracy, tokens_per_problem FROM evaluations ORDER BY ALL",
                "SELECT snapshot_id, n_rows, rows_sha256 FROM training_snapshots ORDER BY ALL"):
        assert store.query(path, sql)[1] == store.query(work["whole"] / "traces.duckdb", sql)[1]
    # MLflow holds the run once: one parent run, one run per iteration and per training
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work['killed'] / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("treeflow").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [
        "nightly-1", "nightly-1/iteration-0", "nightly-1/iteration-1", "nightly-1/iteration-1/sft",
        "nightly-1/iteration-1/value"]


def _wait_for_a_shard(workdir: Path, process: subprocess.Popen, log: Path, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, _tail(log)
        if found := sorted(workdir.glob(SEARCH_MARKERS)):
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no search shard was written within {timeout} s")


def test_pools_are_made_with_one_flow_run_per_gpu(prefect_api, tmp_path):
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "prefect.yaml").read_text())
    pools = {p["name"] for p in spec["definitions"]["work_pools"].values()}
    for gpus in (2, 3):  # made, then updated
        done = subprocess.run([TREEFLOW, "pools", "--gpus", str(gpus)], env=_env(PREFECT_API_URL=prefect_api),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        found = {}
        for name in pools:
            with urllib.request.urlopen(f"{prefect_api}/work_pools/{name}", timeout=10) as response:
                found[name] = json.loads(response.read())
        assert {n: (p["type"], p["concurrency_limit"]) for n, p in found.items()} == {
            "treeflow-cpu": ("process", 1), "treeflow-gpu": ("process", gpus)}
        assert found["treeflow-gpu"]["base_job_template"]["job_configuration"]  # workers can run from it
    missing = subprocess.run([TREEFLOW, "pools", "--gpus", "1"], env=_env(), capture_output=True, text=True)
    assert missing.returncode == 2 and "set PREFECT_API_URL" in missing.stderr
