"""prefect.yaml, checked statically: entrypoints resolve to flows and parameters validate."""

import importlib
from pathlib import Path

import yaml

from flows.config import FlywheelConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_deployment_points_at_a_flow_with_valid_parameters():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints >= {"flows/flywheel.py:flywheel", "flows/flywheel.py:rest_em"}
    for deployment in spec["deployments"]:
        path, _, name = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert flow.name in ("flywheel", "rest-em")
        FlywheelConfig.model_validate(deployment["parameters"]["config"])
        assert deployment["work_pool"]["name"] in {p["name"] for p in spec["definitions"]["work_pools"].values()}
        for schedule in deployment.get("schedules", []):
            assert len(schedule["cron"].split()) == 5 and schedule["timezone"]


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
