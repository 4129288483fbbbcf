"""treeflow as a service on one machine (`treeflow serve`): a real Prefect server on 127.0.0.1 and treeflow's
deployments served from one process, the flywheel on a schedule. A team's server is used instead when
$PREFECT_API_URL is set. Deployments on work pools (GPU workers, a cluster) are declared in prefect.yaml.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.config import FlywheelConfig

#: the name every treeflow deployment has under its flow (`flywheel/treeflow`, `generate/treeflow`, ...), in
#: prefect.yaml and in `treeflow serve` alike, so `run_deployment` finds one either way
DEPLOYMENT = "treeflow"
NIGHTLY = ("0 2 * * *", "Europe/Berlin")
#: the work pools of prefect.yaml: the parent flows on CPU workers, generation and training on GPU workers
CPU_POOL, GPU_POOL = "treeflow-cpu", "treeflow-gpu"


class ServerError(RuntimeError):
    """A Prefect server that did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float, process: subprocess.Popen | None = None,
                 log: Path | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"server exited with status {process.returncode} before {url} answered"
                              + (f"; see {log}" if log else ""))
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServerError(f"{url} did not answer within {timeout:.0f} s" + (f"; see {log}" if log else ""))


@contextmanager
def prefect_server(home: Path, port: int | None = None, timeout: float = 120,
                   env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `prefect server start` on 127.0.0.1 with its database under `home`; yield its API URL; stop it.

    The server's scheduler looks for new deployments every few seconds (Prefect's default), so a schedule
    that is due soon fires on time. Its log goes to `home/server.log`.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = home / "server.log"
    server_env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                  **(env or {})}
    server_env.pop("PREFECT_API_URL", None)
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                    "--port", str(port)], env=server_env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/health", timeout, process, log)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process started with `start_new_session=True` and its children: SIGTERM, then SIGKILL after
    `grace` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def schedule(cron: str | None, timezone: str | None, interval: float | None, anchor: dt.datetime | None):
    """The flywheel's schedule: a cron expression in a timezone, or every `interval` seconds from `anchor`.
    Raises ValueError for a cron expression or timezone that Prefect would refuse."""
    import zoneinfo

    from prefect.schedules import Cron, Interval

    try:
        zoneinfo.ZoneInfo(timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {timezone!r} (an IANA name, e.g. Europe/Berlin)") from None

    if interval is not None:
        return Interval(dt.timedelta(seconds=interval), anchor_date=anchor or dt.datetime.now(dt.UTC),
                        timezone=timezone or "UTC")
    return Cron(cron or NIGHTLY[0], timezone=timezone or NIGHTLY[1])


def deployments(config: FlywheelConfig, flywheel_schedule) -> list:
    """treeflow's deployments, to serve from this process: the flywheel on `flywheel_schedule`, never two
    runs at once (a run still going when the next is due makes the next one cancel); ReST-EM, evaluation,
    generation and training on demand (the UI, `prefect deployment run`, or `run_deployment`)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType

    from flows.evaluate import evaluate
    from flows.flywheel import flywheel, rest_em
    from flows.generate import generate
    from flows.train import train

    params = {"config": config.model_dump(mode="json")}
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    common = dict(name=DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH, tags=["treeflow"])
    return [
        flywheel.to_deployment(**common, schedules=[flywheel_schedule], parameters=params,
                               concurrency_limit=one_at_a_time,
                               description="The search flywheel on a schedule (treeflow serve)."),
        rest_em.to_deployment(**common, parameters=params, concurrency_limit=one_at_a_time,
                              description="The ReST-EM baseline under the flywheel's config."),
        evaluate.to_deployment(**common, parameters={**params, "seeds": [config.seed]},
                               description="Every configured method at the configured budgets."),
        generate.to_deployment(**common, description="Search one shard of problems and write it as Parquet "
                                                     "(the flywheel's `generation.runner: deployment`)."),
        train.to_deployment(**common, description="Train one iteration's policy, value model and ORM from "
                                                  "the trace store."),
    ]


def serve(config: FlywheelConfig, flywheel_schedule, port: int | None = None) -> None:
    """Serve treeflow's deployments until interrupted, on $PREFECT_API_URL or on a Prefect server started
    here on 127.0.0.1 (its database in `<workdir>/.prefect-server`)."""
    if os.environ.get("PREFECT_API_URL"):
        _serve(config, flywheel_schedule, os.environ["PREFECT_API_URL"])
        return
    with prefect_server(Path(config.workdir).resolve() / ".prefect-server", port) as url:
        _serve(config, flywheel_schedule, url)


def _serve(config: FlywheelConfig, flywheel_schedule, url: str) -> None:
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url  # the flow runs this process starts inherit it
    print(f"treeflow serve: Prefect API {url} (UI {url.removesuffix('/api')}); flywheel schedule "
          f"{_describe(flywheel_schedule)}; Ctrl-C stops", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop (and stop the server) on SIGTERM as on Ctrl-C
    with temporary_settings({PREFECT_API_URL: url}):
        prefect_serve(*deployments(config, flywheel_schedule), print_starting_message=False)


def _describe(s) -> str:
    if getattr(s, "cron", None):
        return f"cron '{s.cron}' ({s.timezone})"
    return f"every {s.interval.total_seconds():.0f} s from {s.anchor_date.isoformat(timespec='seconds')}"


def ensure_pools(gpus: int, parents: int = 1) -> dict[str, int]:
    """Create (or update) prefect.yaml's work pools on the current Prefect server: the CPU pool running at
    most `parents` flow runs at once (flywheel, ReST-EM), the GPU pool at most `gpus`: with one GPU worker
    per GPU started with `--limit 1`, no GPU ever runs two flow runs. Returns {pool: concurrency limit}."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    limits = {CPU_POOL: parents, GPU_POOL: gpus}
    about = {CPU_POOL: "treeflow's parent flows (flywheel, ReST-EM)",
             GPU_POOL: "treeflow's generation and training: one worker per GPU, each with --limit 1"}
    with get_client(sync_client=True) as client:
        for name, limit in limits.items():
            try:
                client.read_work_pool(name)
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(
                    name=name, type="process", description=about[name], concurrency_limit=limit,
                    base_job_template=ProcessWorker.get_default_base_job_template()))
            else:
                client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=limit, description=about[name]))
    return limits
