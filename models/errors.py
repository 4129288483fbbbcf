"""Errors raised for unusable model inputs, and the one place model locations (and devices) are resolved."""

from __future__ import annotations

from pathlib import Path


class ModelDirError(FileNotFoundError):
    """A model directory that is missing or is not a Hugging Face model directory."""


def resolve_model(path: str | Path) -> str:
    """A local model directory (must hold config.json), a registered model (`models:/NAME@ALIAS` or
    `models:/NAME/VERSION`, downloaded once into a local cache), or a hub id (`org/name`).

    Hub ids load only where a hub is reachable; offline, a missing directory fails here with one message.
    """
    if str(path).startswith("models:/"):
        return _registered(str(path))
    p = Path(path)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelDirError(f"not a Hugging Face model directory (no config.json): {p}")
        return str(p)
    text = str(path)
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if looks_like_hub_id:
        from huggingface_hub import constants

        if not constants.HF_HUB_OFFLINE:
            return text
        raise ModelDirError(f"model directory not found: {p} (a hub id, but the hub is off: HF_HUB_OFFLINE=1; "
                            "set HF_HUB_OFFLINE=0 where the hub is reachable, or give a local directory)")
    raise ModelDirError(f"model directory not found: {p}")


def _registered(uri: str) -> str:
    """The local directory of a registered model version (downloaded from MLflow on first use)."""
    import os
    import tempfile

    import mlflow
    from mlflow import MlflowClient

    name, _, ref = uri.removeprefix("models:/").partition("@")
    client = MlflowClient()
    try:
        if ref:
            version = client.get_model_version_by_alias(name, ref).version
        else:
            name, _, version = name.partition("/")
            client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as e:
        raise ModelDirError(f"registered model not found: {uri} ({e.message.splitlines()[0]})") from None
    import hashlib
    import shutil

    root = Path(os.environ.get("TREEFLOW_MODEL_CACHE", Path(tempfile.gettempdir()) / "treeflow-models"))
    store = hashlib.sha256(mlflow.get_tracking_uri().encode()).hexdigest()[:10]  # one cache per registry
    local = root / store / name / str(version)
    if not any(local.glob("artifacts/*/config.json")):
        tmp = local.with_name(f".{version}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(local, ignore_errors=True)
        tmp.mkdir(parents=True)
        mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(tmp))
        tmp.rename(local)
    found = sorted(local.glob("artifacts/*/config.json"))  # MLflow keeps the logged directory's own name
    if not found:
        raise ModelDirError(f"registered model {uri} holds no Hugging Face model directory")
    return str(found[0].parent)


def resolve_device(device: str) -> str:
    """`auto` is the GPU where there is one, else the CPU; any other device name is taken as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def window(config, length: int) -> int:
    """`length` tokens cut to the model's position table (`max_position_embeddings`, GPT-2's `n_positions`):
    a longer sequence cannot be embedded (an IndexError on the CPU, a device-side assert on a GPU)."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return min(length, limit) if limit else length


DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(dtype: str, device: str):
    """The weights' dtype on a resolved device: `auto` is bfloat16 on a GPU that has it (what 1-70B
    models are served in), else float32; any other name in `DTYPES` is taken as given."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype != "auto":
        return getattr(torch, dtype)
    gpu = torch.device(device).type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if gpu else torch.float32
