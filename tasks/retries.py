"""Retries with backoff for the failures that pass: a store locked by another writer, a dropped connection,
a GPU briefly full. Bad input (a missing model, a malformed row) fails at once, without retrying."""

from __future__ import annotations

from prefect.tasks import exponential_backoff

RETRIES = 3
#: seconds before each retry: 2, 4, 8 (with jitter)
DELAYS = exponential_backoff(backoff_factor=2)
JITTER = 0.5


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is worth another try."""
    import duckdb

    if isinstance(exc, duckdb.IOException):  # another process holds the store's write lock
        return "lock" in str(exc).lower()
    if isinstance(exc, (ConnectionError, TimeoutError, BlockingIOError)):
        return True
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(exc, torch.OutOfMemoryError) and "CUDA" in str(exc)


def retry_transient(task, task_run, state) -> bool:
    """Prefect `retry_condition_fn`: retry a failed task run only when its exception is transient."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


#: keyword arguments for `@task` of a task that may hit a transient failure
TRANSIENT = dict(retries=RETRIES, retry_delay_seconds=DELAYS, retry_jitter_factor=JITTER,
                 retry_condition_fn=retry_transient)
