"""vLLM policy backend for GPU workers: the same `Policy` protocol, prefix caching on.

vLLM is imported only when this backend is chosen (`policy.backend: vllm`), so CPU installs never need
it. Every prefix's k children come from one request with n = k; vLLM's automatic prefix caching
shares the KV blocks of the prefix across the k samples, across siblings' later expansions and across
trees, which is what the transformers backend does by hand for one call.
"""

from __future__ import annotations

import importlib.util

from models.errors import resolve_model
from models.hf_policy import GenerationStats
from models.policy import Candidate


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
