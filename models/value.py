"""Value / PRM / ORM model: a causal-LM backbone plus a scalar head read at the state's last token.

Saved as a standard `*ForSequenceClassification` directory (num_labels=1, regression), so any HF causal
LM with such a head class works, and `from_pretrained` restores it exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from models.errors import resolve_device, resolve_dtype, resolve_model, window
from models.training import LOGIT_HEAD


def load_value(path: str, *, device: str = "cpu", dtype: str = "auto", step_delimiter: str = "\n"):
    """The value model saved at `path` (a directory, hub id or models:/ URI): a `confidence` value model
    (`models.confidence`) or a scalar head on a backbone (`TransformersValue`); or a published PRM named by a
    `prm:FORMAT:AGGREGATION:MODEL` spec (`models.prm`)."""
    from models.confidence import ConfidenceValue, is_confidence_value
    from models.prm import PublishedPRM, is_prm_spec

    if is_prm_spec(path):
        return PublishedPRM(path, device=device, dtype=dtype, step_delimiter=step_delimiter)
    resolved = resolve_model(path)
    if is_confidence_value(resolved):
        return ConfidenceValue(resolved, device=device, dtype=dtype, step_delimiter=step_delimiter)
    return TransformersValue(resolved, device=device, dtype=dtype, step_delimiter=step_delimiter)


def last_step_start(state: str, delimiter: str = "\n") -> int:
    """Where a state's last step begins: after the delimiter before it (0 when the state is one step)."""
    body = state[:-len(delimiter)] if state.endswith(delimiter) else state
    cut = body.rfind(delimiter)
    return 0 if cut < 0 else cut + len(delimiter)


class TransformersValue:
    """A value model directory as a `ValueModel`; counts the tokens it scores.

    A state is read whole up to `max_length` tokens (capped at the model's positions: an instruct model's long
    MATH states keep their question); a longer one keeps its last tokens.

    Search scores a node's children together, and they share everything but their last step. With
    `reuse_prefix_cache` (the default) `score` runs each distinct prefix through the backbone once and
    only the last steps on top of its KV cache, as the policy does for sampling. It falls back to
    scoring whole states wherever that would not give the same tokens (a tokenizer that merges across
    the step boundary) or would not save work (no prefix shared by two states).
    """

    def __init__(self, path: str, *, batch_size: int = 256, max_length: int = 4096,
                 reuse_prefix_cache: bool = True, device: str = "cpu", dtype: str = "auto",
                 step_delimiter: str = "\n") -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path, device = resolve_model(path), resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=resolve_dtype(dtype, device)).to(device).eval()
        self.device = self.model.device
        self.batch_size, self.max_length = batch_size, window(self.model.config, max_length)
        self.reuse_prefix_cache = reuse_prefix_cache and hasattr(self.model, "score")
        # a head trained as a logit (BCE, or an ORM's Bradley-Terry reward) reports 2 * sigmoid - 1
        self.logit_head = bool(getattr(self.model.config, LOGIT_HEAD, False))
        self.step_delimiter = step_delimiter
        self.scored_tokens = 0
        self.calls = 0

    @torch.inference_mode()
    def score(self, states: list[str]) -> list[float]:
        """One scalar per state."""
        values: list[float] = []
        for start in range(0, len(states), self.batch_size):
            chunk = states[start:start + self.batch_size]
            values.extend(self._score_shared(chunk) if self.reuse_prefix_cache else self._score_whole(chunk))
        self.calls += 1
        return values

    def scorer(self, prompts) -> Callable[[list[str]], list[float]]:
        """`score`: the head reads whole states and needs no prompts (the `confidence` model does)."""
        return self.score

    def _score_whole(self, states: list[str]) -> list[float]:
        enc = self.tokenizer(states, add_special_tokens=False, padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt").to(self.device)
        self.scored_tokens += int(enc["attention_mask"].sum())
        return self._values(self.model(**enc).logits[:, 0])

    def _score_shared(self, states: list[str]) -> list[float]:
        cuts = [last_step_start(s, self.step_delimiter) for s in states]
        prefixes = [s[:c] for s, c in zip(states, cuts, strict=True)]
        steps = [s[c:] for s, c in zip(states, cuts, strict=True)]
        tok = self.tokenizer
        whole = tok(states, add_special_tokens=False)["input_ids"]
        unique = list(dict.fromkeys(prefixes))
        pre_ids = dict(zip(unique, tok(unique, add_special_tokens=False)["input_ids"], strict=True))
        step_ids = tok(steps, add_special_tokens=False)["input_ids"]
        shared = [i for i, (p, st, w) in enumerate(zip(prefixes, step_ids, whole, strict=True))
                  if p and st and pre_ids[p] + st == w and len(w) <= self.max_length]
        if len({prefixes[i] for i in shared}) >= len(shared):  # nothing shared: whole states are cheaper
            return self._score_whole(states)
        out = [0.0] * len(states)
        rest = sorted(set(range(len(states))) - set(shared))
        if rest:
            for i, v in zip(rest, self._score_whole([states[i] for i in rest]), strict=True):
                out[i] = v
        for i, v in zip(shared, self._score_split([pre_ids[prefixes[i]] for i in shared],
                                                  [step_ids[i] for i in shared]), strict=True):
            out[i] = v
        return out

    def _score_split(self, prefix_ids: list[list[int]], step_ids: list[list[int]]) -> list[float]:
        """Scores of prefix + step: each distinct prefix prefilled once, its cache gathered per row."""
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        keys = list(dict.fromkeys(tuple(p) for p in prefix_ids))
        index = {k: r for r, k in enumerate(keys)}
        width = max(len(k) for k in keys)
        pre = torch.full((len(keys), width), pad)
        pre_mask = torch.zeros((len(keys), width), dtype=torch.long)
        for r, k in enumerate(keys):  # left-padded, so every prefix ends at the same column
            pre[r, width - len(k):] = torch.tensor(k)
            pre_mask[r, width - len(k):] = 1
        base = self.model.base_model
        pre, pre_mask = pre.to(self.device), pre_mask.to(self.device)
        out = base(input_ids=pre, attention_mask=pre_mask, position_ids=(pre_mask.cumsum(-1) - 1).clamp(min=0),
                   use_cache=True)
        row = torch.tensor([index[tuple(p)] for p in prefix_ids], device=self.device)
        cache = out.past_key_values
        cache.batch_select_indices(row)
        steps_w = max(len(s) for s in step_ids)
        step = torch.full((len(step_ids), steps_w), pad)
        step_mask = torch.zeros((len(step_ids), steps_w), dtype=torch.long)
        for r, s in enumerate(step_ids):  # right-padded: each row's last real token is at len - 1
            step[r, :len(s)] = torch.tensor(s)
            step_mask[r, :len(s)] = 1
        step, step_mask = step.to(self.device), step_mask.to(self.device)
        lengths = pre_mask[row].sum(-1, keepdim=True)
        # a short step's padding runs past its own end; held at the last position, it stays inside the
        # model's position table (its outputs are never read)
        positions = (lengths + torch.arange(steps_w, device=self.device)[None, :]).clamp(max=self.max_length - 1)
        hidden = base(input_ids=step, attention_mask=torch.cat([pre_mask[row], step_mask], dim=1),
                      position_ids=positions, past_key_values=cache, use_cache=True).last_hidden_state
        last = hidden[torch.arange(len(step_ids), device=self.device), step_mask.sum(-1) - 1]
        self.scored_tokens += int(pre_mask.sum()) + int(step_mask.sum())
        return self._values(self.model.score(last)[:, 0])

    def _values(self, head: torch.Tensor) -> list[float]:
        head = head.float()
        return (2 * torch.sigmoid(head) - 1 if self.logit_head else head).tolist()
