"""Published process reward models as value models, each read exactly where its authors read it.

A PRM scores every step of a solution with the probability that the step is right. Three input formats
cover the PRMs the field compares with:

- `math_shepherd` (Math-Shepherd, e.g. peiyi9979/math-shepherd-mistral-7b-prm): the question, a space, then
  each step followed by the step tag `" ки\\n"`; a step's score is P("+") between the "+" and "-" logits
  at its tag token.
- `qwen` (Qwen2.5-Math-PRM-7B/72B): the chat template with a system prompt, the question as the user turn
  and the steps joined by `<extra_0>` (one after the last) as the assistant turn; a token-classification
  head, and a step's score is the positive class's probability at its `<extra_0>`.
- `chat` (RLHFlow style, e.g. RLHFlow/Llama3.1-8B-PRM-Deepseek-Data): one user turn per step (the first
  prefixed by the question) each answered by an assistant turn "+"; a step's score is P("+") between the
  "+" and "-" logits at the token before its "+".

One solution's step scores become one value by `last`, `min` or `prod` (as the field aggregates them),
reported on the value model's scale, 2 p - 1 in [-1, 1]. A PRM is named to treeflow as a spec,
`prm:FORMAT:AGGREGATION:MODEL` (MODEL a directory, hub id or models:/ URI), wherever a value model path
goes (`value.path`), and is used as published: the flywheel never refits it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from models.errors import resolve_device, resolve_dtype, resolve_model, window
from models.prompts import BOXED_SYSTEM_PROMPT

FORMATS = ("math_shepherd", "qwen", "chat")
AGGREGATIONS = ("last", "min", "prod")
SPEC_PREFIX = "prm:"
SHEPHERD_TAG = "ки"
QWEN_SEPARATOR = "<extra_0>"


class PRMError(ValueError):
    """A PRM spec or a PRM directory that cannot be read in its format; the message names which."""


@dataclass(frozen=True)
class PRMSpec:
    format: str
    aggregation: str
    model: str


def is_prm_spec(path: str) -> bool:
    return str(path).startswith(SPEC_PREFIX)


def parse_spec(spec: str) -> PRMSpec:
    """`prm:FORMAT:AGGREGATION:MODEL` as its parts; a malformed spec is one PRMError naming what is wrong."""
    parts = str(spec).removeprefix(SPEC_PREFIX).split(":", 2)
    if not is_prm_spec(spec) or len(parts) != 3 or not parts[2]:
        raise PRMError(f"{spec!r}: a PRM is named prm:FORMAT:AGGREGATION:MODEL, e.g. "
                       "prm:qwen:min:Qwen/Qwen2.5-Math-PRM-7B")
    fmt, how, model = parts
    if fmt not in FORMATS:
        raise PRMError(f"{spec!r}: unknown PRM format {fmt!r}; known: {', '.join(FORMATS)}")
    if how not in AGGREGATIONS:
        raise PRMError(f"{spec!r}: unknown step aggregation {how!r}; known: {', '.join(AGGREGATIONS)}")
    return PRMSpec(fmt, how, model)


def check_tokenizer(tok, fmt: str, where: str) -> dict[str, int]:
    """The token ids a format reads off `tok` (`separator`, or `plus` and `minus`); a tokenizer the format cannot
    be read with (no chat template, the separator or step tag not one token, no "+" / "-") is one PRMError
    naming `where`."""
    if fmt in ("qwen", "chat") and not tok.chat_template:
        raise PRMError(f"{where}: the {fmt} PRM format needs a chat template, and this tokenizer has none "
                       "(tokenizer_config.json: chat_template)")
    if fmt == "qwen":
        ids = tok.encode(QWEN_SEPARATOR, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == tok.unk_token_id:
            raise PRMError(f"{where}: the qwen PRM format separates steps with {QWEN_SEPARATOR}, which is not "
                           "one token of this tokenizer")
        return {"separator": ids[0]}
    if fmt == "math_shepherd":
        probe = f"1 + 1 = 2 {SHEPHERD_TAG}\n"
        start = probe.index(SHEPHERD_TAG)
        enc = tok(probe, add_special_tokens=False, return_offsets_mapping=True)
        covering = [a for a, b in enc["offset_mapping"] if a <= start + len(SHEPHERD_TAG) - 1 < b]
        if not covering or covering[0] > start:
            raise PRMError(f"{where}: the math_shepherd PRM format tags each step with {SHEPHERD_TAG!r}, which "
                           "is not one token of this tokenizer")
    plus, minus = (tok.encode(t, add_special_tokens=False) for t in ("+", "-"))
    if not plus or not minus or plus[-1] == minus[-1] or tok.unk_token_id in (plus[-1], minus[-1]):
        raise PRMError(f"{where}: the {fmt} PRM format reads the '+' and '-' tokens, which this tokenizer does "
                       "not have as two tokens")
    return {"plus": plus[-1], "minus": minus[-1]}


def check(spec: str) -> None:
    """Everything about a PRM spec that can be checked without loading its weights: the spec, the model's
    location and its tokenizer against the format (a `treeflow` command's preflight)."""
    from transformers import AutoTokenizer

    parsed = parse_spec(spec)
    path = resolve_model(parsed.model)
    check_tokenizer(AutoTokenizer.from_pretrained(path), parsed.format, path)


class PublishedPRM:
    """A published PRM as a `ValueModel`; counts the tokens it scores and its calls."""

    def __init__(self, spec: str | PRMSpec, *, batch_size: int = 8, max_length: int = 4096,
                 step_delimiter: str = "\n", device: str = "cpu", dtype: str = "auto") -> None:
        from transformers import AutoTokenizer

        self.spec = parse_spec(spec) if isinstance(spec, str) else spec
        path, device = resolve_model(self.spec.model), resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.format, self.aggregation = self.spec.format, self.spec.aggregation
        self.step_delimiter = step_delimiter
        ids = check_tokenizer(self.tokenizer, self.format, path)
        self.separator_id, self.plus_id, self.minus_id = ids.get("separator"), ids.get("plus"), ids.get("minus")
        self.model = _load(path, self.format, resolve_dtype(dtype, device)).to(device).eval()
        self.device = self.model.device
        self.batch_size, self.max_length = batch_size, window(self.model.config, max_length)
        self.scored_tokens = 0
        self.calls = 0

    def scorer(self, prompts: Iterable[str]) -> Callable[[list[str]], list[float]]:
        """Scores of states whose prompts are among `prompts` (a state of an unknown prompt is read as its first
        line, then the steps)."""
        from problems.steps import prompt_splitter, question_of, split_state
        from search.aggregate import step_score

        steps_of = prompt_splitter(prompts)

        def score(states: list[str]) -> list[float]:
            solutions = []
            for state in states:
                prompt, steps = split_state(steps_of, state)
                solutions.append((question_of(prompt), self.split_steps(steps)))
            return [2 * step_score(s, self.aggregation) - 1 if s else 0.0 for s in self.step_scores(solutions)]

        return score

    def score(self, states: list[str]) -> list[float]:
        return self.scorer(())(states)

    def split_steps(self, text: str) -> list[str]:
        """A state's steps without their delimiters (empty steps dropped)."""
        from problems.steps import split_steps

        return [s for s in (p.strip() for p in split_steps(text, self.step_delimiter)) if s]

    @torch.inference_mode()
    def step_scores(self, solutions: list[tuple[str, list[str]]]) -> list[list[float]]:
        """P(step is right) for every step of every (question, steps) solution, batched."""
        self.calls += 1
        out: list[list[float]] = [[] for _ in solutions]
        todo = [i for i, (_, steps) in enumerate(solutions) if steps]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            encoded = [self._encode(*solutions[i]) for i in chunk]
            for i, scores in zip(chunk, self._forward(encoded), strict=True):
                out[i] = scores
        return out

    def _encode(self, question: str, steps: list[str]) -> tuple[list[int], list[int]]:
        """(token ids, the positions whose logits score each step) of one solution in the model's format."""
        tok = self.tokenizer
        if self.format == "qwen":
            text = tok.apply_chat_template(
                [{"role": "system", "content": BOXED_SYSTEM_PROMPT}, {"role": "user", "content": question},
                 {"role": "assistant", "content": QWEN_SEPARATOR.join(steps) + QWEN_SEPARATOR}],
                tokenize=False, add_generation_prompt=False)
            ids = tok.encode(text, add_special_tokens=False)
            return ids, [p for p, t in enumerate(ids) if t == self.separator_id]
        if self.format == "math_shepherd":
            text, ends = question + " ", []
            for step in steps:
                text += f"{step} {SHEPHERD_TAG}"
                ends.append(len(text) - 1)  # the tag's last character: its token holds the step's logits
                text += "\n"
            return self._positions(text, ends, shift=0, add_special_tokens=True)
        conversation, ends, text = [], [], ""
        for k, step in enumerate(steps):
            conversation += [{"role": "user", "content": f"{question} {step}" if k == 0 else step},
                             {"role": "assistant", "content": "+"}]
            text = tok.apply_chat_template(conversation, tokenize=False)
            ends.append(text.rindex("+"))  # this turn's "+": the token before it holds the step's logits
        if any(e >= len(text) or text[e] != "+" for e in ends):
            raise PRMError(f"{self.spec.model}: its chat template does not render earlier turns unchanged")
        ids, positions = self._positions(text, ends, shift=1, add_special_tokens=False)
        if any(ids[p + 1] != self.plus_id for p in positions):
            raise PRMError(f"{self.spec.model}: its chat template merges the assistant's '+' into another token")
        return ids, positions

    def _positions(self, text: str, chars: list[int], shift: int, add_special_tokens: bool):
        enc = self.tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        spans = enc["offset_mapping"]
        positions = []
        for c in chars:
            token = next(t for t, (a, b) in enumerate(spans) if a <= c < b)
            positions.append(token - shift)
        return enc["input_ids"], positions

    def _forward(self, encoded: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Each solution's step scores from one padded pass; a solution longer than the model's window keeps
        its last tokens, and the steps cut off with its start are not scored."""
        cut = [max(0, len(ids) - self.max_length) for ids, _ in encoded]
        rows = [ids[c:] for (ids, _), c in zip(encoded, cut, strict=True)]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        pad = (self.tokenizer.eos_token_id or 0) if pad is None else pad
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):  # right-padded: a causal model's logits at a real token ignore the padding
            ids[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        self.scored_tokens += int(mask.sum())
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        logits = (logits.logits if hasattr(logits, "logits") else logits[0]).float()
        if self.format == "qwen":
            probs = logits.softmax(-1)[..., 1]
        else:
            probs = logits[..., [self.plus_id, self.minus_id]].softmax(-1)[..., 0]
        probs = probs.cpu()
        return [[float(probs[r, p - c]) for p in positions if p - c >= 0]
                for r, ((_, positions), c) in enumerate(zip(encoded, cut, strict=True))]


def _load(path: str, fmt: str, dtype):
    """The model: a causal LM for the "+"/"-" formats; for `qwen`, the authors' remote-code model where the
    directory ships one (Qwen2ForProcessRewardModel), else a token-classification head of two classes."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification

    if fmt != "qwen":
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    if "AutoModel" in (getattr(config, "auto_map", None) or {}):
        return AutoModel.from_pretrained(path, dtype=dtype, trust_remote_code=True)
    model = AutoModelForTokenClassification.from_pretrained(path, dtype=dtype)
    if model.config.num_labels != 2:
        raise PRMError(f"{path}: a qwen-format PRM has two classes per token, not {model.config.num_labels}")
    return model
