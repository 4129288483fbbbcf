"""Transformers policy backend: batched step sampling with the shared prefix's KV cache reused.

Each prefix is prefilled once; its cache is repeated k times and the k children are sampled from it,
instead of prefilling k copies (`reuse_prefix_cache=False` does that, for comparison and tests).
A step ends at its `step_delimiter` (`"\\n"`: the first token whose text holds a newline; `"\\n\\n"`, as
instruct models write steps: once the step's text holds a blank line), at EOS, or at `max_step_tokens`; its
text keeps the delimiter whole, so the next state continues exactly what was generated. Once fewer than
`compact_below` of the rows still decode, the finished ones are dropped from the batch and its cache
(1.0: always, 0.0: never), so short steps stop costing compute while long ones finish.

Sampling whole paths (greedy, Self-Consistency, Best-of-N, ReST-EM, the value model's rollouts) goes through
`propose_paths`: each path is decoded in one go, the cache kept from step to step, instead of prefilling
every state again for each step (3.1x faster greedy on the testbed, the same steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from models.errors import resolve_device, resolve_dtype, resolve_model
from models.policy import Candidate


@dataclass
class GenerationStats:
    """Counters for budget accounting: what the policy actually computed."""

    calls: int = 0
    generated_tokens: int = 0
    prefill_tokens: int = 0
    forward_passes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class StepDelimiterError(ValueError):
    """A step delimiter a policy's tokenizer cannot write."""


def check_delimiter(tokenizer, delimiter: str) -> None:
    """A step delimiter must end in a newline (a step that does not is one the policy stopped mid-way) and
    come back from the tokenizer as written; else one StepDelimiterError naming it."""
    if not delimiter or not delimiter.endswith("\n"):
        raise StepDelimiterError(f"policy.step_delimiter {delimiter!r}: a step delimiter ends in a newline, "
                                 "e.g. \"\\n\" or \"\\n\\n\"")
    probe = f"1.{delimiter}2"
    if tokenizer.decode(tokenizer.encode(probe, add_special_tokens=False)) != probe:
        raise StepDelimiterError(f"policy.step_delimiter {delimiter!r}: the tokenizer does not write it back as "
                                 f"it reads it ({getattr(tokenizer, 'name_or_path', '')})")


def special_prefix(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts before a text of its own accord (Llama's BOS; none for Qwen's or
    the tiny tokenizer): TRL's SFT tokenizes prompts that way, so the policy reads its prompts that way too."""
    plain = tokenizer("1", add_special_tokens=False)["input_ids"]
    full = tokenizer("1")["input_ids"]
    return next((full[:i] for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), [])


@dataclass
class TransformersPolicy:
    """A Hugging Face causal LM as a `Policy`."""

    model: torch.nn.Module
    tokenizer: object
    temperature: float = 0.7
    max_step_tokens: int = 32
    max_batch_rows: int = 512
    reuse_prefix_cache: bool = True
    compact_below: float = 0.75
    seed: int = 0
    step_delimiter: str = "\n"
    stats: GenerationStats = field(default_factory=GenerationStats)

    def __post_init__(self) -> None:
        check_delimiter(self.tokenizer, self.step_delimiter)
        self.model.eval()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        self.device = next(self.model.parameters()).device
        # on the model's device, so a step's probabilities never leave it (one vocabulary row per sample)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        vocab = len(self.tokenizer)
        texts = self.tokenizer.batch_decode([[i] for i in range(vocab)])
        self.stop_ids = torch.tensor([i for i, t in enumerate(texts) if "\n" in t] +
                                     [self.tokenizer.eos_token_id], device=self.device)
        self._stops = set(self.stop_ids.tolist())
        self.lead_ids = special_prefix(self.tokenizer)
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", 2048)

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream (search seeds each batch of problems, so sharding changes nothing)."""
        self.generator.manual_seed(seed)

    @classmethod
    def from_pretrained(cls, path: str, *, device: str = "cpu", dtype: str = "auto",
                        **kwargs) -> TransformersPolicy:
        """Load a model directory (or hub id where a hub is reachable) onto `device` in `dtype` (see
        `resolve_dtype`: `auto` is bfloat16 on a GPU, float32 on the CPU)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path, device = resolve_model(path), resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, device)).to(device)
        return cls(model=model, tokenizer=tokenizer, **kwargs)

    def propose_steps(self, prefixes: list[str], k: int, *, temperature: float | None = None
                      ) -> list[list[Candidate]]:
        """k sampled next steps for every prefix."""
        return self._in_chunks(prefixes, k, temperature, lambda encoded, t: self._propose_chunk(encoded, k, t))

    def propose_paths(self, prompts: list[str], n: int, *, temperature: float | None = None, max_depth: int,
                      ends: Callable[[str], bool]) -> list[list[list[Candidate]]]:
        """n step sequences per prompt, each decoded in one go, without prefilling the state again at every
        step as proposing one step at a time does. A step ends as `propose_steps`' do (a newline, EOS or
        `max_step_tokens`); a path ends at a step whose text `ends` says is its last, or after `max_depth`
        steps. A path also stops, unfinished, after a step that ends in EOS or leaves no room in the model's
        positions for another: `search.sampling.sample_paths` continues those a step at a time."""
        return self._in_chunks(prompts, n, temperature,
                               lambda encoded, t: self._paths_chunk(encoded, n, t, max_depth, ends))

    def _in_chunks(self, texts: list[str], k: int, temperature: float | None, decode: Callable) -> list:
        """One policy call: `decode(token ids, temperature)` over the texts, `max_batch_rows // k` at a time,
        each text cut to its last tokens that leave a step's room in the model's positions."""
        temperature = self.temperature if temperature is None else temperature
        room = self.max_positions - self.max_step_tokens
        encoded = [(self.lead_ids + ids)[-room:]
                   for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        per_chunk = max(1, self.max_batch_rows // k)
        out = []
        for start in range(0, len(encoded), per_chunk):
            out.extend(decode(encoded[start:start + per_chunk], temperature))
        self.stats.calls += 1
        return out

    def _ends(self, ids: list[int]) -> bool:
        """Whether a step of these tokens, the last of which may end one (a newline in it, or EOS), has ended."""
        return (self.step_delimiter == "\n" or ids[-1] == self.tokenizer.eos_token_id
                or self.step_delimiter in self.tokenizer.decode(ids))

    def _propose_chunk(self, encoded: list[list[int]], k: int, temperature: float) -> list[list[Candidate]]:
        def finished(t: int, rows: torch.Tensor, tok: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            out = torch.isin(tok, self.stop_ids)
            if self.step_delimiter != "\n":
                for i in out.nonzero().flatten().tolist():
                    out[i] = self._ends(tokens[int(rows[i]), :t + 1].tolist())
            return out

        tokens, logps = self._decode(self._prefill(encoded, k), self.max_step_tokens, temperature, finished)
        result: list[list[Candidate]] = []
        for row in range(tokens.shape[0]):
            ids = tokens[row].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in self._stops and self._ends(ids[:i + 1])),
                       len(ids))
            if row % k == 0:
                result.append([])
            result[-1].append(self._candidate(ids[:end], logps[row, :end]))
        return result

    def _paths_chunk(self, encoded: list[list[int]], n: int, temperature: float, max_depth: int,
                     ends: Callable[[str], bool]) -> list[list[list[Candidate]]]:
        rows, eos = len(encoded) * n, self.tokenizer.eos_token_id
        # the last token a step may start after, per row: its prompt's length counts against the positions
        last_start = [self.max_positions - self.max_step_tokens - len(e) for e in encoded for _ in range(n)]
        starts = torch.zeros(rows, dtype=torch.long, device=self.device)  # where each row's current step began
        spans: list[list[tuple[int, int]]] = [[] for _ in range(rows)]

        def finished(t: int, live: torch.Tensor, tok: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            """Close the steps that end at token t; a row whose step was its path's last, or that must go on
            step by step, is finished."""
            out = torch.zeros_like(tok, dtype=torch.bool)
            full = t + 1 - starts[live] >= self.max_step_tokens
            at_end = torch.isin(tok, self.stop_ids) | full
            for i in at_end.nonzero().flatten().tolist():
                row = int(live[i])
                a = int(starts[row])
                if not full[i] and not self._ends(tokens[row, a:t + 1].tolist()):
                    continue
                spans[row].append((a, t + 1))
                ids = tokens[row, a:t + 1].tolist()
                out[i] = (ids[-1] == eos or len(spans[row]) == max_depth or t + 1 > last_start[row]
                          or ends(self._step_text(ids)))
                starts[row] = t + 1
            return out

        tokens, logps = self._decode(self._prefill(encoded, n), max_depth * self.max_step_tokens, temperature,
                                     finished)
        paths: list[list[list[Candidate]]] = []
        for row in range(rows):
            if row % n == 0:
                paths.append([])
            paths[-1].append([self._candidate(tokens[row, a:b].tolist(), logps[row, a:b]) for a, b in spans[row]])
        return paths

    @torch.inference_mode()
    def _prefill(self, encoded: list[list[int]], k: int) -> tuple:
        """The prefixes' cache and next-token logits, k rows per prefix (the cache repeated, not recomputed,
        with `reuse_prefix_cache`), with the attention mask and each row's next position."""
        if not self.reuse_prefix_cache:  # prefill k copies: what reference implementations do
            encoded = [ids for ids in encoded for _ in range(k)]
        input_ids, mask = self._left_pad(encoded)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True)
        self.stats.prefill_tokens += int(mask.sum())
        self.stats.forward_passes += 1
        cache, logits = out.past_key_values, out.logits[:, -1, :].float()
        if self.reuse_prefix_cache and k > 1:
            cache.batch_repeat_interleave(k)
            logits, mask, positions = (t.repeat_interleave(k, dim=0) for t in (logits, mask, positions))
        return cache, logits, mask, positions[:, -1:] + 1

    @torch.inference_mode()
    def _decode(self, prefilled: tuple, steps: int, temperature: float, finished: Callable
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to `steps` tokens per row after `_prefill` (argmax at temperature 0). Each token, `finished(t,
        rows, tok, tokens)` is given the original indices of the rows still decoding, their tokens and every
        row's tokens so far, and says which of them are done. Returns every row's tokens (pad after its
        last) and their log-probabilities."""
        cache, logits, mask, next_pos = prefilled
        rows = logits.shape[0]
        tokens = torch.full((rows, steps), self.pad_id, device=self.device)
        logps = torch.zeros((rows, steps), device=self.device)
        alive = torch.arange(rows, device=self.device)  # the original row of each row still in the batch
        done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        for t in range(steps):
            if temperature <= 0:
                tok = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                tok = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
            live = (~done).nonzero().squeeze(1)
            tokens[alive[live], t] = tok[live]
            logps[alive[live], t] = torch.log_softmax(logits[live], dim=-1).gather(1, tok[live, None]).squeeze(1)
            done[live] = finished(t, alive[live], tok[live], tokens)
            if bool(done.all()) or t == steps - 1:
                break
            if float((~done).float().mean()) < self.compact_below:  # drop finished rows from the batch
                keep = (~done).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                alive, tok, mask, next_pos, done = alive[keep], tok[keep], mask[keep], next_pos[keep], done[keep]
            tok = torch.where(done, torch.full_like(tok, self.pad_id), tok)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos,
                             past_key_values=cache, use_cache=True)
            self.stats.forward_passes += 1
            cache, logits, next_pos = out.past_key_values, out.logits[:, -1, :].float(), next_pos + 1
        return tokens, logps

    def _step_text(self, ids: list[int]) -> str:
        """A step's text: its tokens without EOS, cut after the first step delimiter."""
        text = self.tokenizer.decode([t for t in ids if t != self.tokenizer.eos_token_id])
        d = self.step_delimiter
        return text[: text.index(d) + len(d)] if d in text else text

    def _candidate(self, ids: list[int], logps: torch.Tensor) -> Candidate:
        n = len(ids)
        self.stats.generated_tokens += n
        return Candidate(text=self._step_text(ids), tokens=n, logprob=float(logps.sum()) / max(n, 1))

    def _left_pad(self, encoded: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in encoded)
        pad = self.pad_id
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=self.device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=self.device)
        return ids, mask
