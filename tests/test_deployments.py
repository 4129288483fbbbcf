"""prefect.yaml, checked statically: entrypoints resolve to flows and parameters validate."""

import importlib
from pathlib import Path

import yaml

from flows.config import FlywheelConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_deployment_points_at_a_flow_with_valid_parameters():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["deployments"]
    for deployment in spec["deployments"]:
        path, _, name = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert flow.name == "flywheel"
        FlywheelConfig.model_validate(deployment["parameters"]["config"])
        assert deployment["work_pool"]["name"] in {p["name"] for p in spec["definitions"]["work_pools"].values()}
        for schedule in deployment.get("schedules", []):
            assert len(schedule["cron"].split()) == 5 and schedule["timezone"]
