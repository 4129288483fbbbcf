"""Resume: work whose output is complete is not done again when a run is restarted with the same run id.

A search shard or a trained model directory is written atomically; after it, the task writes a marker
(`treeflow_result.json`) holding what the task returned and a fingerprint of its inputs. A restarted
task with the same inputs finds the marker and returns the recorded result instead of working again;
a directory without the marker (the process was killed before it was written) or with another
fingerprint (the inputs changed) is done again and replaced. The trace store is idempotent on its own
(trees already ingested are skipped, evaluation rows and snapshots are replaced), so a run killed at any
point and restarted ends with the same store as one that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MARKER = "treeflow_result.json"


def fingerprint(**inputs) -> str:
    """A digest of a task's inputs (anything JSON can write, dataclasses and paths by their repr)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=repr).encode()).hexdigest()


def done(directory: str | Path, key: str) -> dict | None:
    """The result recorded in `directory` for inputs `key`, or None when it must be done (again)."""
    marker = Path(directory) / MARKER
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return record["result"] if isinstance(record, dict) and record.get("key") == key else None


def finish(directory: str | Path, key: str, result: dict) -> dict:
    """Record `result` as the output of inputs `key` in `directory` (atomically); returns `result`."""
    write_json(Path(directory) / MARKER, {"key": key, "result": result})
    return result


def write_json(path: Path, data) -> None:
    """Write `data` as JSON to `path` atomically (a reader sees the old file or the whole new one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def identity(model: str | None) -> str | None:
    """What a model is for a fingerprint: its training's fingerprint when treeflow trained it, else its path
    (a hub id, a registry URI, or a directory made elsewhere)."""
    if model is None:
        return None
    marker = Path(model) / MARKER
    try:
        return json.loads(marker.read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return model
