"""Errors raised for unusable model inputs, and the one place model locations are resolved."""

from __future__ import annotations

from pathlib import Path


class ModelDirError(FileNotFoundError):
    """A model directory that is missing or is not a Hugging Face model directory."""


def resolve_model(path: str | Path) -> str:
    """A local model directory (must hold config.json) or a hub id (`org/name`) that is not a local path.

    Hub ids load only where a hub is reachable; offline, a missing directory fails here with one message.
    """
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
    raise ModelDirError(f"model directory not found: {p}")
