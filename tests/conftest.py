"""Shared fixtures: an offline environment, one Prefect test harness, a tiny trained model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="treeflow-test-"))
os.environ.setdefault("PREFECT_HOME", str(_HOME / "prefect"))
os.environ.setdefault("TREEFLOW_PROGRESS", "0")
if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share the cores: one thread each (and their subprocesses)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

from flows import env  # noqa: E402  (environment first, before Prefect / MLflow import)

env.configure()

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: `make test` runs the files on two workers (`pytest -n 2 --dist loadfile --no-loadscope-reorder`), each taking
#: the next file when it is free: the slowest files go first, each beside a quick one, so both finish together
SLOW_FIRST = ("test_service.py", "test_flow.py", "test_cli.py", "test_policy.py", "test_report.py",
              "test_evaluate.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri(monkeypatch):
    """`mlflow.set_tracking_uri` in a test exports $MLFLOW_TRACKING_URI; undo it after the test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    yield


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness for the whole session (starting one costs ~15 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def load_benchmark():
    """Import a script of benchmarks/ by name (they are scripts, not a package)."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_recipe():
    from models.tiny import TinyRecipe
    from models.training import SFTSettings

    return TinyRecipe(n_demos=512, sft=SFTSettings(epochs=1, max_steps=24, learning_rate=3e-3, batch_size=32,
                                                   max_length=128))


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory, tiny_recipe) -> Path:
    """A tiny policy trained for a few steps (real tokenizer, real TRL SFT, real model directory)."""
    from models.tiny import bootstrap

    return bootstrap(tiny_recipe, tmp_path_factory.mktemp("tiny-cache"))


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless Chromium: the one on PATH, else installed from Debian's packages here (needs root)."""
    import shutil
    import subprocess

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.geteuid() != 0:
            pytest.fail("the viewer test needs Chromium: apt-get install chromium (as root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                                     "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}"
        found = shutil.which("chromium")
    return found
