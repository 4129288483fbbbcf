"""Value / PRM model: a causal-LM backbone plus a scalar head read at the state's last token.

Saved as a standard `*ForSequenceClassification` directory (num_labels=1, regression), so any HF causal
LM with such a head class works, and `from_pretrained` restores it exactly.
"""

from __future__ import annotations

import torch

from models.errors import resolve_model


class TransformersValue:
    """A value model directory as a `ValueModel`; counts the tokens it scores."""

    def __init__(self, path: str, *, batch_size: int = 256, max_length: int = 256) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", max_length)
        self.batch_size, self.max_length = batch_size, min(max_length, limit)
        self.scored_tokens = 0
        self.calls = 0

    @torch.inference_mode()
    def score(self, states: list[str]) -> list[float]:
        """One scalar per state."""
        values: list[float] = []
        for start in range(0, len(states), self.batch_size):
            enc = self.tokenizer(states[start:start + self.batch_size], add_special_tokens=False,
                                 padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            self.scored_tokens += int(enc["attention_mask"].sum())
            values.extend(self.model(**enc).logits[:, 0].float().tolist())
        self.calls += 1
        return values
