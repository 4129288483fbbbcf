"""`--check`: everything a config needs on this machine, each reported, before any work starts.

Where a run's preflight stops at the first missing input, a check goes through all of them (the models and
their formats, the task's data, the checker, the GPU, the vLLM and Ray backends) and says of each what is
there or what is missing and how to get it. It writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    name: str
    ok: bool
    detail: str


def requirements(config, is_bad_input: Callable[[Exception], bool]) -> list[Requirement]:
    """Each requirement of `config` here; `is_bad_input` tells a missing input from a bug (which raises)."""
    out: list[Requirement] = []

    def need(name: str, probe: Callable[[], str]) -> bool:
        try:
            out.append(Requirement(name, True, probe()))
        except Exception as e:  # noqa: BLE001  (only what is_bad_input calls missing input is reported)
            if not is_bad_input(e):
                raise
            out.append(Requirement(name, False, str(e)))
        return out[-1].ok

    policy = config.policy
    if policy.path is None:
        need("policy", lambda: "the built-in tiny model (its shipped copy, or bootstrapped from `tiny`)")
    elif need("policy", lambda: _found(policy.path)):
        need("prompts and steps", lambda: _policy_format(config))
    if config.value.path is not None:
        need("value model", lambda: _value(config.value.path))
    else:
        init = config.value.init
        need("value model", lambda: "trained on the policy's rollouts from "
                                    + ("the policy" if init is None else _found(init)))
    need("test problems", lambda: read_problems(config, "test"))
    need("training problems", lambda: read_problems(config, "train"))
    if config.task.name == "math":
        need("checker", lambda: _checker(config.task.options.get("checker", "auto")))
    need("device", lambda: _device(policy.device, policy.backend))
    if policy.backend == "vllm":
        need("vLLM", _vllm)
    if config.generation.runner == "ray":
        need("Ray", _ray)
    return out


def _found(path: str) -> str:
    from pathlib import Path

    from models.errors import resolve_model

    where = resolve_model(path)
    return f"the local directory {where}" if Path(where).is_dir() else f"{where} from the Hugging Face hub"


def _policy_format(config) -> str:
    check_policy_format(config)
    p = config.policy
    return (f"{p.prompt_format} prompts, steps end at {p.step_delimiter!r}, at most {p.max_step_tokens} tokens "
            "a step")


def check_policy_format(config) -> None:
    """The policy's tokenizer writes the step delimiter back as it reads it, and has a chat template where the
    prompts are chat prompts (the tiny model has none)."""
    from models.prompts import ChatTemplateError

    if config.policy.path is None:
        if config.policy.prompt_format == "chat":
            raise ChatTemplateError("policy.prompt_format chat: the built-in tiny model has no chat template; "
                                    "give policy.path (an instruct model) or use prompt_format plain")
        return
    from transformers import AutoTokenizer

    from models.errors import ModelDirError, resolve_model
    from models.hf_policy import check_delimiter
    from models.prompts import chat_prompt

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.policy.path))
    except OSError as e:  # a hub id that is neither cached nor reachable
        if isinstance(e, ModelDirError):
            raise
        raise ModelDirError(f"policy.path {config.policy.path}: its tokenizer could not be loaded here "
                            f"({str(e).splitlines()[0]})") from None
    check_delimiter(tokenizer, config.policy.step_delimiter)
    if config.policy.prompt_format == "chat":
        chat_prompt(tokenizer, "1 + 1?", config.policy.system_prompt)


def _value(path: str) -> str:
    from models import prm

    if prm.is_prm_spec(path):
        prm.check(path)
        spec = prm.parse_spec(path)
        return f"the published PRM {spec.model} ({spec.format} format, {spec.aggregation} of its step scores)"
    return _found(path)


def read_problems(config, split: str) -> str:
    """Read the problems a run will take from `split` (every test problem, one training problem); a bad
    source or row raises `DatasetError` naming it."""
    from problems import select_problems

    size = max([config.task.test_size, *config.evaluation.test_sizes.values()]) if split == "test" else 1
    found = select_problems(config.task.name, split, 0, size, config.task.options)
    return f"{config.task.name} {split}: {len(found)} problem{'s' if len(found) != 1 else ''} read"


def _checker(name: str) -> str:
    from problems import DatasetError, grading

    try:
        return f"{grading.resolve(name)} grades the answers"
    except grading.CheckerUnavailable as e:
        raise DatasetError(str(e)) from None


def _device(device: str, backend: str) -> str:
    import torch

    from models.vllm_policy import BackendUnavailable

    wants_gpu = device.startswith("cuda") or backend == "vllm"
    if wants_gpu and not torch.cuda.is_available():
        what = f"policy.device {device!r}" + (" and the vllm backend" if backend == "vllm" else "")
        raise BackendUnavailable(f"{what}: no CUDA GPU here (run it on a GPU worker, or set device: cpu and "
                                 "backend: transformers)")
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} GPU)"
    return "the CPU" + (" (device auto: no GPU here)" if device == "auto" else "")


def _vllm() -> str:
    from models.vllm_policy import require_vllm

    require_vllm()
    import importlib.metadata

    return f"vllm {importlib.metadata.version('vllm')}"


def _ray() -> str:
    from flows.generate import require_ray

    require_ray()
    return "prefect-ray installed"


def report(console, config_path: str, found: list[Requirement]) -> int:
    """Print the requirements as a table; 0 when all are met, 2 when any is missing."""
    from rich.table import Table

    table = Table(title=f"treeflow --check: {config_path}", title_justify="left")
    for col in ("", "needs", "here"):
        table.add_column(col, overflow="fold")
    for r in found:
        table.add_row("ok" if r.ok else "MISSING", r.name, r.detail)
    console.print(table)
    missing = [r.name for r in found if not r.ok]
    console.print("everything is here: the run can start" if not missing else
                  f"missing: {', '.join(missing)}; nothing was run", highlight=False)
    return 2 if missing else 0
