"""prefect.yaml, checked statically: entrypoints resolve to flows and parameters validate."""

import importlib
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
