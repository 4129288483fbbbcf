"""Provenance of a run: which code ran it."""

from __future__ import annotations

from pathlib import Path


def code_version() -> str:
    """`treeflow X.Y.Z` plus the git commit (and `+dirty`) when the code runs from a checkout."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    try:
        out = f"treeflow {version('treeflow')}"
    except PackageNotFoundError:
        out = "treeflow (not installed)"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return out
    return f"{out} git {sha}{'+dirty' if dirty else ''}"
