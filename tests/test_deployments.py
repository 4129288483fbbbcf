"""prefect.yaml, checked statically: entrypoints resolve to flows and parameters validate."""

import importlib
import re
import zoneinfo
from pathlib import Path

import yaml

from flows.config import FlywheelConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_deployment_points_at_a_flow_with_valid_parameters():
    """Each flow deployed once under treeflow's deployment name, on a pool declared once in `definitions`:
    the parent flows on the CPU pool on a schedule, never two at once; generation and training on the GPU
    pool, where the flywheel's config sends them. Parameters validate against each flow's signature."""
    from flows.service import CPU_POOL, DEPLOYMENT, GPU_POOL

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    pools = {p["name"] for p in spec["definitions"]["work_pools"].values()}
    assert pools == {CPU_POOL, GPU_POOL}
    placed = {}
    for deployment in spec["deployments"]:
        path, _, name = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
        assert deployment["name"] == DEPLOYMENT
        placed[flow.name] = deployment["work_pool"]["name"]
        if "parameters" in deployment:  # generation and training get theirs from the flow that starts them
            flow.validate_parameters(deployment["parameters"])
        for schedule in deployment.get("schedules", []):
            assert len(schedule["cron"].split()) == 5 and zoneinfo.ZoneInfo(schedule["timezone"])
        if flow.name in ("flywheel", "rest-em"):
            assert deployment["schedules"] and deployment["concurrency_limit"] == {
                "limit": 1, "collision_strategy": "CANCEL_NEW"}
            config = FlywheelConfig.model_validate(deployment["parameters"]["config"])
            assert (config.generation.runner, config.training.runner) == ("deployment", "deployment")
            assert {config.generation.deployment, config.training.deployment} == {
                f"generate/{DEPLOYMENT}", f"train/{DEPLOYMENT}"}
    assert placed == {"flywheel": CPU_POOL, "rest-em": CPU_POOL, "generate": GPU_POOL, "train": GPU_POOL,
                      "evaluate": GPU_POOL}
    # the pools and the schedule are written once (YAML anchors), not repeated per deployment
    text = (ROOT / "prefect.yaml").read_text()
    assert text.count(f"name: {GPU_POOL}") == 1 and text.count('cron: "0 2 * * *"') == 1


def test_docker_compose_is_local_only_and_keeps_secrets_out():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "prefect-worker", "mlflow"} <= services.keys()
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
        env = service.get("environment", {})
        for key, value in (env.items() if isinstance(env, dict) else []):
            if "PASSWORD" in key or "SECRET" in key:
                assert str(value).startswith("${"), f"{name}.{key} must come from the env file"
    for name in ("postgres", "prefect-server", "mlflow"):
        assert "healthcheck" in services[name], name
    text = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD=" not in text.replace("${POSTGRES_PASSWORD", "")
    assert not (ROOT / ".env").exists() and (ROOT / ".env.example").is_file()
    assert ".env" in (ROOT / ".gitignore").read_text().split()


#: the compose specification's service keys used here and their neighbours (a typo in a key fails the test)
SERVICE_KEYS = {"image", "build", "command", "entrypoint", "environment", "env_file", "volumes", "ports",
                "depends_on", "healthcheck", "restart", "profiles", "deploy", "networks", "secrets", "user",
                "working_dir", "labels", "shm_size", "ipc"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
DEVICE_KEYS = {"driver", "count", "device_ids", "capabilities", "options"}


def test_docker_compose_follows_the_compose_spec_and_runs_treeflow_on_gpu_workers():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose) - {"name", "services", "volumes", "networks", "secrets"} == {
        k for k in compose if k.startswith("x-")}
    services, volumes = compose["services"], compose["volumes"]
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        assert ("image" in service) != ("build" in service), name
        assert set(service.get("healthcheck", {})) <= HEALTHCHECK_KEYS, name
        for other, condition in service.get("depends_on", {}).items():
            assert other in services and condition["condition"] in ("service_healthy", "service_started",
                                                                      "service_completed_successfully")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in volumes, f"{name}: undeclared volume {source}"
    # every treeflow container shares the work directory prefect.yaml's deployments use
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    workdir = spec["definitions"]["config"]["workdir"]
    workers = {n: s for n, s in services.items() if "build" in s}
    assert {"setup", "prefect-worker", "prefect-worker-gpu0"} <= workers.keys()
    for name, service in workers.items():
        assert f"treeflow-data:{workdir}" in service["volumes"], name
        assert service["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert service["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "--pool treeflow-cpu" in workers["prefect-worker"]["command"]
    # the GPU variant: a CUDA build, one NVIDIA device reserved, one flow run at a time, only with --profile gpu
    gpu = workers["prefect-worker-gpu0"]
    assert "--pool treeflow-gpu" in gpu["command"] and "--limit 1" in gpu["command"]
    assert gpu["profiles"] == ["gpu"] and "cu" in gpu["build"]["args"]["TORCH_INDEX"].rsplit("/", 1)[-1]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert set(device) <= DEVICE_KEYS and device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["device_ids"] == ["0"]
    # setup makes the pools and registers the deployments; every variable compose reads is in .env.example
    assert "treeflow pools" in workers["setup"]["command"] and "deploy --all" in workers["setup"]["command"]


    used = set(re.findall(r"(?<!\$)\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    example = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    assert used <= example, used - example


def test_the_worker_image_holds_every_package_and_the_deployments():
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    copied = {word for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
              for word in line.split()[1:-1]}
    assert set(packages) | {"prefect.yaml", "pyproject.toml", "constraints.txt"} <= copied
