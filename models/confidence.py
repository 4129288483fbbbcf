"""A value model that reads a language model's confidence in each step: the `confidence` value model.

A scalar head on the policy's backbone, trained by MSE on rollout targets, learns how hard a problem is and
not whether the step just taken is right (docs/testbed.md, sessions 6-7): on the testbed it ranks held-out
steps at AUC 0.72. The language model itself knows more: every token of every step was a training target,
and the log-probability it gives a step it did not expect is low. This value model keeps the causal LM whole
and learns, from the same step targets, how to weigh a handful of features of its per-token log-probabilities
(`FEATURES`) into a value: a logistic regression, fitted by L-BFGS on the targets mapped to [0, 1], read as
2 * sigmoid - 1 on [-1, 1] like every other value model here.

The directory it is saved to is the causal LM's own (AutoModelForCausalLM loads it) plus `CONFIDENCE_FILE`,
the weights. The flywheel refits it from the previous one each iteration: the LM stays the one it started
from (the first policy, as the head's backbone does), the weights are refitted on all the trees so far (the
paths an LM has scored are kept for the process's later fits, so a refit scores only the new ones).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

from models.errors import resolve_device, resolve_dtype, resolve_model, window

CONFIDENCE_FILE = "treeflow_confidence.json"
#: per state, over its steps (the lines after the prompt), each step's tokens' log-probabilities under the LM
FEATURES = ("weakest step's mean token log-prob", "last step's mean token log-prob",
            "sum of the steps' mean token log-probs", "least likely token's log-prob", "steps")


def is_confidence_value(path: str | Path) -> bool:
    return (Path(path) / CONFIDENCE_FILE).is_file()


#: the paths an LM has scored in this process, for one LM at a time: {(weights digest, window): {path: log-probs}}.
#: The flywheel refits the weights every iteration on every tree so far with the same LM, so each refit scores
#: only the paths that are new since the last.
_SCORED: dict[tuple[str, int], dict[tuple[str, tuple[str, ...]], list[list[float]]]] = {}


def _scored_paths(model, max_length: int) -> dict:
    """The cache of paths scored by `model`, named by a hash of its weights (a directory saved again holds
    the same weights in other bytes)."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + b"\0" + str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    key = (digest.hexdigest(), max_length)
    if key not in _SCORED:
        _SCORED.clear()  # one LM's paths at a time
        _SCORED[key] = {}
    return _SCORED[key]


def state_features(step_logprobs: list[list[float]]) -> list[float]:
    """`FEATURES` of a state from its steps' token log-probabilities (a state with no step scores 0s)."""
    means = [sum(t) / len(t) for t in step_logprobs if t] or [0.0]
    lows = [min(t) for t in step_logprobs if t] or [0.0]
    return [min(means), means[-1], sum(means), min(lows), float(len(step_logprobs))]


class _LogProbs:
    """The causal LM's log-probability of every token of a (prompt, steps) path, per step, one forward pass
    per path: a state's features are those of the path's first steps."""

    def __init__(self, path: str, device: str, dtype: str, batch_size: int, max_length: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, device))
        self.model = self.model.to(device).eval()
        self.batch_size, self.max_length = batch_size, window(self.model.config, max_length)
        self.scored_tokens = 0
        # a search scores the same prompt and steps again and again: each text is tokenized once
        self._ids = functools.lru_cache(maxsize=1 << 16)(
            lambda text: tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"]))

    def tokens(self, prompt: str, steps: Iterable[str]) -> int:
        """How many tokens the path is, tokenized as `paths` tokenizes it."""
        return len(self._ids(prompt)) + sum(len(self._ids(step)) for step in steps)

    def paths(self, paths: list[tuple[str, list[str]]]) -> list[list[list[float]]]:
        """Per path, per step, its tokens' log-probs given everything before them. Prompt and steps are
        tokenized one by one (as value training tokenizes them); a path longer than the window keeps its last
        `max_length` tokens, and a step cut off there scores from what is left of it."""
        import torch

        out: list[list[list[float]]] = []
        for start in range(0, len(paths), self.batch_size):
            chunk = paths[start:start + self.batch_size]
            encoded, spans = [], []
            for prompt, steps in chunk:
                ids = list(self._ids(prompt))
                bounds = []
                for step in steps:
                    piece = self._ids(step)
                    bounds.append((len(ids), len(ids) + len(piece)))
                    ids += piece
                cut = max(0, len(ids) - self.max_length)
                encoded.append(ids[cut:])
                spans.append([(max(a - cut, 1), b - cut) for a, b in bounds])  # token 0 has no context
            width = max(map(len, encoded))
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            batch = torch.tensor([x + [pad] * (width - len(x)) for x in encoded], device=self.model.device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in encoded], device=self.model.device)
            with torch.inference_mode():
                logits = self.model(input_ids=batch, attention_mask=mask).logits.float()
                token = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch[:, 1:, None])[..., 0].cpu()
            self.scored_tokens += int(mask.sum())
            for row, bounds in zip(token.tolist(), spans, strict=True):
                out.append([row[a - 1:b - 1] if b > a else [] for a, b in bounds])
        return out


class ConfidenceValue:
    """A `confidence` value model directory as a `ValueModel`; counts the tokens it scores.

    `score(states)` needs to know where each state's prompt ends: `scorer(prompts)` gives a scorer that looks
    each state's prompt up among `prompts` (as the calculator's check does); a state whose prompt is not
    among them is read as its first line, then the steps.
    """

    def __init__(self, path: str, *, batch_size: int = 64, max_length: int = 4096, device: str = "cpu",
                 dtype: str = "auto", step_delimiter: str = "\n") -> None:
        path, device = resolve_model(path), resolve_device(device)
        spec = json.loads((Path(path) / CONFIDENCE_FILE).read_text())
        if spec.get("features") != list(FEATURES):
            raise ValueError(f"{Path(path) / CONFIDENCE_FILE}: features {spec.get('features')} are not the ones "
                             f"this treeflow computes ({list(FEATURES)}); refit the value model")
        self.mean, self.scale = spec["mean"], spec["scale"]
        self.weights, self.bias = spec["weights"], spec["bias"]
        self.lm = _LogProbs(path, device, dtype, batch_size, max_length)
        self.step_delimiter = step_delimiter
        self.calls = 0

    @property
    def scored_tokens(self) -> int:
        return self.lm.scored_tokens

    def scorer(self, prompts: Iterable[str]) -> Callable[[list[str]], list[float]]:
        from problems.steps import prompt_splitter, split_state, split_steps

        steps_of = prompt_splitter(prompts)

        def score(states: list[str]) -> list[float]:
            paths = []
            for state in states:
                prompt, steps = split_state(steps_of, state)
                paths.append((prompt, split_steps(steps, self.step_delimiter)))
            self.calls += 1
            # a state that begins a longer one of the batch is read off the longer one's forward pass (a causal
            # LM gives a step the same log-probs whatever follows it), unless the window cuts the longer one
            owner: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {}  # state -> (path scored, its depth)
            scored: list[tuple[str, tuple[str, ...]]] = []
            for prompt, steps in sorted(set(paths), key=lambda p: -len(p[1])):
                if (prompt, steps) in owner:
                    continue
                fits = self.lm.tokens(prompt, steps) <= self.lm.max_length
                owner.update({(prompt, steps[:d]): (len(scored), d) for d in range(len(steps) + 1)
                              if fits or d == len(steps)})
                scored.append((prompt, steps))
            logps = self.lm.paths(scored)
            return [self.value(state_features(logps[i][:d])) for i, d in (owner[p] for p in paths)]

        return score

    def score(self, states: list[str]) -> list[float]:
        return self.scorer(())(states)

    def value(self, features: list[float]) -> float:
        z = self.bias + sum(w * (f - m) / s for w, f, m, s in
                            zip(self.weights, features, self.mean, self.scale, strict=True))
        return 2 / (1 + math.exp(-max(-60.0, min(60.0, z)))) - 1


def fit_confidence_value(init: str | Path, rows: list[dict], out_dir: str | Path, *, l2: float = 1e-3,
                         batch_size: int = 64, max_length: int = 4096, device: str = "cpu",
                         progress: Callable[[int, int], None] | None = None) -> dict:
    """Fit the weights on value-training rows (`{"segments": [[prompt, None], [step, target], ...]}`, the
    targets on [-1, 1]) and save the LM of `init` (a causal LM, or a `confidence` value model directory)
    with them to `out_dir`, atomically. Returns the history in `models.training.train_value`'s shape (the
    loss is the fit's binary cross-entropy against the targets mapped to [0, 1])."""
    import torch

    from models.training import atomic_dir

    if not rows:
        raise ValueError("no value targets: nothing to fit the confidence value model on")
    path = resolve_model(init)
    lm = _LogProbs(path, resolve_device(device), "auto", batch_size, max_length)  # saved in the dtype it runs in
    paths = [(row["segments"][0][0], tuple(step for step, _ in row["segments"][1:])) for row in rows]
    scored = _scored_paths(lm.model, lm.max_length)
    new = list(dict.fromkeys(p for p in paths if p not in scored))
    for start in range(0, len(new), 1024):
        chunk = new[start:start + 1024]
        scored.update(zip(chunk, lm.paths(chunk), strict=True))
        if progress is not None:
            progress(len(paths) - len(new) + start + len(chunk), len(paths))
    if progress is not None and not new:
        progress(len(paths), len(paths))
    features: dict[str, tuple[list[float], float]] = {}
    for row, key in zip(rows, paths, strict=True):
        text, logps = key[0], scored[key]
        for depth, (step, target) in enumerate(row["segments"][1:]):
            text += step
            if target is not None:
                features.setdefault(text, (state_features(logps[:depth + 1]), float(target)))
    x = torch.tensor([f for f, _ in features.values()], dtype=torch.float64)
    y = (torch.tensor([t for _, t in features.values()], dtype=torch.float64).clamp(-1, 1) + 1) / 2
    mean, scale = x.mean(0), x.std(0).nan_to_num(0.0).clamp(min=1e-6)
    xn = (x - mean) / scale
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")
    losses: list[float] = []

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xn @ w + b, y) + l2 * (w ** 2).sum()
        loss.backward()
        losses.append(float(loss.detach()))
        return loss

    optimizer.step(closure)
    spec = {"features": list(FEATURES), "mean": mean.tolist(), "scale": scale.tolist(), "weights": w.tolist(),
            "bias": float(b.detach()), "states": len(features), "l2": l2}

    def write(tmp: Path) -> None:
        lm.model.save_pretrained(str(tmp))
        lm.tokenizer.save_pretrained(str(tmp))
        (tmp / CONFIDENCE_FILE).write_text(json.dumps(spec, indent=1))

    atomic_dir(out_dir, write)
    return {"train_loss": losses[-1], "steps": len(losses), "losses": list(enumerate(losses, 1)),
            "settings": {"model": "confidence", "l2": l2, "states": len(features)}, "scored_paths": len(new)}
