"""Training on the trace store's data: policy SFT with TRL, value regression with transformers.Trainer.

Both train from rows (already read out of a view) into a fresh output directory that is written
atomically: a crash leaves no half-written model directory behind.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from models.errors import resolve_model, window

#: model config key saying the head's output is a logit (BCE or Bradley-Terry): values are 2 * sigmoid - 1
LOGIT_HEAD = "treeflow_logit_head"


@dataclass(frozen=True)
class SFTSettings:
    """Policy distillation (TRL SFTTrainer, loss on completion tokens only)."""

    #: passes over the training rows
    epochs: float = 2.0
    #: stop after this many optimizer steps (-1: epochs decide)
    max_steps: int = -1
    #: peak learning rate
    learning_rate: float = 5e-4
    #: rows per optimizer step
    batch_size: int = 64
    #: warmup: steps, or a fraction of all steps when below 1
    warmup_steps: float = 0.0
    #: transformers scheduler name
    lr_scheduler: str = "cosine"
    #: rows are cut to this many tokens
    max_length: int = 128
    #: seed of the data order
    seed: int = 0
    #: LoRA adapters of this rank on every linear layer instead of a full fine-tune (0: full); merged into the
    #: saved model, which loads as any model directory
    lora_rank: int = 0
    #: LoRA's alpha (the adapters' scale is alpha / rank)
    lora_alpha: int = 32
    #: recompute activations in the backward pass: less memory for a model that does not fit, more time
    gradient_checkpointing: bool = False


#: training settings added after recipes were first hashed: at these defaults they leave a recipe's hash alone
ADDED_LATER = {"lora_rank": 0, "lora_alpha": 32, "gradient_checkpointing": False}


def without_later_defaults(values: dict) -> dict:
    """Training settings as a mapping, less the `ADDED_LATER` ones at their defaults: what they read before
    those were added, so hashes, records and cache keys made of them stay the same."""
    return {k: v for k, v in values.items() if not (k in ADDED_LATER and v == ADDED_LATER[k])}


def settings_repr(settings) -> str:
    """A settings dataclass's repr as it read before `ADDED_LATER` (`without_later_defaults`)."""
    from dataclasses import fields

    kept = without_later_defaults({f.name: getattr(settings, f.name) for f in fields(settings)})
    return f"{type(settings).__name__}({', '.join(f'{k}={v!r}' for k, v in kept.items())})"


@dataclass(frozen=True)
class ValueSettings:
    """Value / PRM training: a scalar head read at the last token of each step.

    `loss`: "mse" regresses the head on targets in [-1, 1] (both papers); "bce" trains it as a logit
    on labels mapped to [0, 1] (cross-entropy on hard labels; soft targets work too), and the saved
    model then reports 2 * sigmoid - 1, so search sees the same scale either way. `label_tokens`:
    "step_end" labels each step's last token (the PRM reading); "every" labels all of a step's tokens
    (TS-LLM's token-level critic).
    """

    #: passes over the value rows
    epochs: float = 2.0
    #: stop after this many optimizer steps (-1: epochs decide)
    max_steps: int = -1
    #: peak learning rate
    learning_rate: float = 1e-3
    #: rows per optimizer step
    batch_size: int = 64
    #: rows are cut to this many tokens
    max_length: int = 128
    #: seed of the head's initialisation and the data order
    seed: int = 0
    #: mse: regress targets in [-1, 1]; bce: a logit on labels mapped to [0, 1]
    loss: Literal["mse", "bce"] = "mse"
    #: step_end: each step's last token is labelled; every: all its tokens (TS-LLM's critic)
    label_tokens: Literal["step_end", "every"] = "step_end"
    #: LoRA adapters of this rank on the backbone's linear layers, the head trained whole (0: full fine-tune)
    lora_rank: int = 0
    #: LoRA's alpha (the adapters' scale is alpha / rank)
    lora_alpha: int = 32
    #: recompute activations in the backward pass: less memory, more time
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class RewardSettings:
    """ORM training: TRL RewardTrainer (Bradley-Terry) on (correct, wrong) final-answer pairs."""

    #: passes over the pairs
    epochs: float = 1.0
    #: stop after this many optimizer steps (-1: epochs decide)
    max_steps: int = -1
    #: peak learning rate
    learning_rate: float = 1e-3
    #: pairs per optimizer step
    batch_size: int = 32
    #: texts are cut to this many tokens
    max_length: int = 128
    #: TRL's penalty keeping rewards centred on 0 (None: off)
    center_rewards: float | None = 0.01
    #: seed of the data order
    seed: int = 0


ProgressFn = Callable[[int, int], None]


def _common_args(settings, out: str, n_rows: int) -> dict:
    """Trainer arguments shared by every trainer: bf16 on GPUs that have it, fp32 on CPU. Launched with
    `accelerate launch` / `torchrun`, the same call trains data-parallel on every GPU."""
    import torch

    gpu = torch.cuda.is_available()
    return dict(
        output_dir=out, num_train_epochs=settings.epochs, max_steps=settings.max_steps,
        learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
        seed=settings.seed, use_cpu=not gpu, bf16=gpu and torch.cuda.is_bf16_supported(),
        activation_checkpointing=getattr(settings, "gradient_checkpointing", False),
        report_to=[], save_strategy="no", logging_steps=max(1, planned_steps(settings, n_rows) // 20),
        disable_tqdm=True, dataloader_num_workers=0,
    )


def planned_steps(settings, n_rows: int) -> int:
    """Optimizer steps a training run will take (for progress bars and schedules)."""
    if settings.max_steps > 0:
        return settings.max_steps
    return max(1, math.ceil(math.ceil(n_rows / settings.batch_size) * settings.epochs))


def _callbacks(progress: ProgressFn | None):
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress(state.global_step, state.max_steps)

    return [_Progress()]


def _quiet(trainer):
    from transformers import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def atomic_dir(out_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill `out_dir` with `write(scratch)`, a fresh sibling directory renamed into place once it is whole: a crash
    leaves the old directory or none, never a half-written one."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    write(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def require_peft() -> None:
    """LoRA needs peft; where it is not installed, one clear error with the fix."""
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise ModuleNotFoundError("lora_rank > 0 trains LoRA adapters with peft, which is not installed here "
                                  "(pip install 'treeflow[lora]')")


def _with_lora(model, settings, task_type: str):
    """`model` with LoRA adapters on its linear layers where `settings.lora_rank` asks for them (peft)."""
    if not getattr(settings, "lora_rank", 0):
        return model
    require_peft()
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha,
                                            target_modules="all-linear", task_type=task_type))


def _atomic_save(trainer, tokenizer, out_dir: Path) -> Path:
    def write(tmp: Path) -> None:
        if hasattr(trainer.model, "merge_and_unload"):  # LoRA: the adapters merged in, a plain model directory
            trainer.model.merge_and_unload().save_pretrained(str(tmp))
        else:
            trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    return atomic_dir(out_dir, write)


def train_policy(init: str | Path | object, rows: list[dict], out_dir: str | Path, settings: SFTSettings,
                 *, tokenizer=None, progress: ProgressFn | None = None, callbacks: list | None = None) -> dict:
    """SFT a causal LM on `{"prompt", "completion"}` rows; saves to `out_dir`; returns the loss history.

    `init` is a model directory / hub id, or a model object (then pass its `tokenizer`).
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("no training rows: nothing to fine-tune the policy on")
    if isinstance(init, (str, Path)):
        path = resolve_model(init)
        model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    else:
        model = init
    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(**_common_args(settings, scratch, len(rows)),
                         max_length=window(model.config, settings.max_length),
                         completion_only_loss=True, lr_scheduler_type=settings.lr_scheduler,
                         warmup_steps=settings.warmup_steps, dataset_num_proc=None)
        trainer = _quiet(SFTTrainer(model=_with_lora(model, settings, "CAUSAL_LM"), args=args,
                                    processing_class=tokenizer,
                                    train_dataset=Dataset.from_list(rows),
                                    callbacks=_callbacks(progress) + list(callbacks or [])))
        if len(trainer.train_dataset) == 0:  # TRL drops rows whose completion truncation cut away entirely
            raise ValueError(f"no completion token within the first {args.max_length} of any of the {len(rows)} "
                             "rows: every prompt fills the window (sft max_length, capped at the model's "
                             "positions)")
        result = trainer.train()
        _atomic_save(trainer, tokenizer, out_dir)
    return _history(trainer, result, settings)


def train_value(init: str | Path, rows: list[dict], out_dir: str | Path, settings: ValueSettings,
                *, progress: ProgressFn | None = None) -> dict:
    """Train the scalar head at every labelled token; saves to `out_dir`; returns the loss history.

    A row is `{"segments": [[text, target | None], ...]}`: the texts concatenated form one state (the
    prompt, then one segment per step), and a segment's target is the value of the state it ends in
    (None: not trained). With `label_tokens="step_end"` only each step's last token carries it, where
    inference reads the head; with "every", all its tokens do. `{"text", "target"}` trains the last
    token only. Targets are on [-1, 1]. `init` is a causal LM directory (the backbone; the head starts
    fresh) or a value model directory.
    """
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments, set_seed

    if not rows:
        raise ValueError("no value targets: nothing to train the value model on")
    path = resolve_model(init)
    tokenizer = AutoTokenizer.from_pretrained(path)
    set_seed(settings.seed)  # the fresh head's initialisation
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, problem_type="regression")
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id
    setattr(model.config, LOGIT_HEAD, settings.loss == "bce")
    length = window(model.config, settings.max_length)
    dataset = Dataset.from_list([_token_labels(tokenizer, row, length, settings.label_tokens) for row in rows])
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(**_common_args(settings, scratch, len(rows)), lr_scheduler_type="cosine",
                                 remove_unused_columns=False)
        trainer = _quiet(_token_value_trainer(settings.loss, model=_with_lora(model, settings, "SEQ_CLS"),
                                              args=args, train_dataset=dataset,
                                              callbacks=_callbacks(progress),
                                              data_collator=_pad_collator(model.config.pad_token_id)))
        result = trainer.train()
        _atomic_save(trainer, tokenizer, out_dir)
    return _history(trainer, result, settings)


IGNORE = -100.0


def _token_labels(tokenizer, row: dict, max_length: int, label_tokens: str = "step_end") -> dict:
    """Token ids and one label per token (IGNORE where untrained), cut to the last `max_length` tokens."""
    segments = row["segments"] if "segments" in row else [[row["text"], None]]
    ids: list[int] = []
    labels: list[float] = []
    for text, target in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        if target is None or not piece:
            labels += [IGNORE] * len(piece)
        elif label_tokens == "every":
            labels += [float(target)] * len(piece)
        else:
            labels += [IGNORE] * (len(piece) - 1) + [float(target)]
    if "segments" not in row:
        labels[-1] = float(row["target"])
    return {"input_ids": ids[-max_length:], "labels": labels[-max_length:]}


def _pad_collator(pad_id: int):
    import torch

    def collate(batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE)
        for i, b in enumerate(batch):  # right padding: positions stay 0..n-1
            n = len(b["input_ids"])
            ids[i, :n], mask[i, :n], labels[i, :n] = torch.tensor(b["input_ids"]), 1, torch.tensor(b["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def _token_value_trainer(loss: str, **kwargs):
    """A Trainer taking the loss at every labelled token (class built here: transformers loads lazily)."""
    import torch
    from transformers import Trainer

    class TokenValueTrainer(Trainer):
        """MSE (or BCE on the logit) of the value head at every labelled token of a sequence classifier."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # under LoRA adapters
            body = getattr(inner, inner.base_model_prefix)
            hidden = body(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
            values = inner.score(hidden).squeeze(-1).float()
            keep = labels != IGNORE
            if loss == "bce":
                out = torch.nn.functional.binary_cross_entropy_with_logits(values[keep], (labels[keep] + 1) / 2)
            else:
                out = ((values - labels) ** 2)[keep].mean()
            return (out, values) if return_outputs else out

    return TokenValueTrainer(**kwargs)


def train_orm(init: str | Path, pairs: list[dict], out_dir: str | Path, settings: RewardSettings,
              *, progress: ProgressFn | None = None) -> dict:
    """TRL RewardTrainer on `{"chosen", "rejected"}` whole solutions (prompt included); saves to `out_dir`.

    The reward is read at the last token of the text, exactly as search reads it: texts are tokenized
    here without special tokens (no EOS appended), so training and inference see the same tokens. The
    saved model reports 2 * sigmoid(reward) - 1. `init` is a causal LM or a value model directory.
    """
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from trl import RewardConfig, RewardTrainer

    if not pairs:
        raise ValueError("no preference pairs: nothing to train the ORM on")
    path = resolve_model(init)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    set_seed(settings.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    setattr(model.config, LOGIT_HEAD, True)
    length = window(model.config, settings.max_length)
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"][-length:]  # noqa: E731
    data = Dataset.from_list([{"chosen_ids": ids(p["chosen"]), "rejected_ids": ids(p["rejected"])} for p in pairs])
    with tempfile.TemporaryDirectory() as scratch:
        args = RewardConfig(**_common_args(settings, scratch, len(pairs)), lr_scheduler_type="cosine",
                            max_length=None, center_rewards_coefficient=settings.center_rewards,
                            dataset_num_proc=None)
        trainer = _quiet(RewardTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=data,
                                       callbacks=_callbacks(progress)))
        result = trainer.train()
        _atomic_save(trainer, tokenizer, out_dir)
    return _history(trainer, result, settings)


def _history(trainer, result, settings) -> dict:
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return {"train_loss": result.training_loss, "steps": trainer.state.global_step, "losses": losses,
            "settings": asdict(settings)}
