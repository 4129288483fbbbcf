"""vLLM policy backend for GPU workers: the same `Policy` protocol, prefix caching on.

vLLM is imported only when this backend is chosen (`policy.backend: vllm`), so CPU installs never need
it. Every prefix's k children come from one request with n = k; vLLM's automatic prefix caching
shares the KV blocks of the prefix across the k samples, across siblings' later expansions and across
trees, which is what the transformers backend does by hand for one call.

Whole paths (greedy, Self-Consistency, Best-of-N, ReST-EM) are decoded in one request each, as the
transformers backend's `propose_paths` does, and cut into steps afterwards (`split_path`): the same steps
a step-by-step decode would end where (delimiter, EOS, `max_step_tokens`), every generated token counted.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from models.errors import resolve_model
from models.hf_policy import GenerationStats
from models.policy import Candidate


def split_path(token_ids: list[int], logprobs: list[float], decode: Callable[[list[int]], str], *,
               delimiter: str, eos_id: int | None, max_step_tokens: int, max_depth: int,
               ends: Callable[[str], bool]) -> list[Candidate]:
    """One decoded path as its steps: a step ends once its text holds `delimiter` (the text is cut right after
    it), at EOS (left out of the text), or after `max_step_tokens`; the path ends at a step `ends` says is its
    last, at EOS, or after `max_depth` steps. Tokens after the path's end belong to no step; tokens of a step
    the decode stopped in the middle of make a last, unfinished step."""
    steps: list[Candidate] = []
    start = 0
    for i, token in enumerate(token_ids):
        ids = token_ids[start:i + 1]
        eos = token == eos_id
        text = decode(ids[:-1] if eos else ids)
        done = eos or delimiter in text or len(ids) >= max_step_tokens
        if not done and i < len(token_ids) - 1:
            continue
        if delimiter in text:
            text = text[: text.index(delimiter) + len(delimiter)]
        lps = logprobs[start:i + 1]
        steps.append(Candidate(text=text, tokens=len(ids), logprob=sum(lps) / max(len(lps), 1)))
        start = i + 1
        if eos or len(steps) >= max_depth or ends(text):
            break
    return steps


class BackendUnavailable(RuntimeError):
    """A backend that cannot run on this machine (its package is not installed)."""


def require_vllm() -> None:
    """Raise `BackendUnavailable` with the fix when vLLM is not importable here."""
    if importlib.util.find_spec("vllm") is None:
        raise BackendUnavailable("policy.backend 'vllm' needs the vllm package on a CUDA machine "
                                 "(pip install vllm); use backend 'transformers' on CPU")


class VLLMPolicy:
    """A model served by an in-process vLLM engine as a `Policy`."""

    def __init__(self, path: str, *, temperature: float = 0.7, max_step_tokens: int = 32, seed: int = 0,
                 gpu_memory_utilization: float = 0.85, dtype: str = "auto", tensor_parallel_size: int = 1,
                 step_delimiter: str = "\n", **engine_kwargs) -> None:
        require_vllm()
        from vllm import LLM

        self.llm = LLM(model=resolve_model(path), enable_prefix_caching=True, seed=seed, dtype=dtype,
                       gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                       **engine_kwargs)
        self.temperature, self.max_step_tokens, self.seed = temperature, max_step_tokens, seed
        self.step_delimiter = step_delimiter
        self.tokenizer = self.llm.get_tokenizer()
        self.stats = GenerationStats()

    def propose_steps(self, prefixes: list[str], k: int, *, temperature: float | None = None
                      ) -> list[list[Candidate]]:
        """k sampled next steps for every prefix, each ending at its step delimiter (kept), EOS or the limit."""
        from vllm import SamplingParams

        temperature = self.temperature if temperature is None else temperature
        params = SamplingParams(n=k, temperature=temperature, max_tokens=self.max_step_tokens,
                                stop=[self.step_delimiter],
                                include_stop_str_in_output=True, logprobs=0)
        outputs = self.llm.generate(prefixes, params, use_tqdm=False)
        self.stats.calls += 1
        result = []
        for out in outputs:
            self.stats.prefill_tokens += len(out.prompt_token_ids or [])
            row = []
            for c in out.outputs:
                n = len(c.token_ids)
                self.stats.generated_tokens += n
                mean_lp = (c.cumulative_logprob or 0.0) / max(n, 1)
                row.append(Candidate(text=c.text, tokens=n, logprob=mean_lp))
            result.append(row)
        return result

    def propose_paths(self, prompts: list[str], n: int, *, temperature: float | None = None, max_depth: int,
                      ends: Callable[[str], bool]) -> list[list[list[Candidate]]]:
        """n step sequences per prompt, each decoded by vLLM in one go and cut into steps (`split_path`)."""
        from vllm import SamplingParams

        temperature = self.temperature if temperature is None else temperature
        params = SamplingParams(n=n, temperature=temperature, max_tokens=max_depth * self.max_step_tokens,
                                logprobs=0)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        self.stats.calls += 1
        eos = self.tokenizer.eos_token_id
        decode = self.tokenizer.decode
        paths = []
        for out in outputs:
            self.stats.prefill_tokens += len(out.prompt_token_ids or [])
            group = []
            for c in out.outputs:
                ids = list(c.token_ids)
                self.stats.generated_tokens += len(ids)  # all of them: a budget counts what was computed
                lps = [step[t].logprob if step and t in step else 0.0
                       for t, step in zip(ids, c.logprobs or [None] * len(ids), strict=True)]
                group.append(split_path(ids, lps, decode, delimiter=self.step_delimiter, eos_id=eos,
                                        max_step_tokens=self.max_step_tokens, max_depth=max_depth, ends=ends))
            paths.append(group)
        return paths
