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

from models.errors import resolve_model


@dataclass(frozen=True)
class SFTSettings:
    """Policy distillation (TRL SFTTrainer, loss on completion tokens only)."""

    epochs: float = 2.0
    max_steps: int = -1
    learning_rate: float = 5e-4
    batch_size: int = 64
    warmup_steps: float = 0.0
    lr_scheduler: str = "cosine"
    max_length: int = 128
    seed: int = 0


@dataclass(frozen=True)
class ValueSettings:
    """Value regression (MSE on a scalar head read at the last token of the state)."""

    epochs: float = 2.0
    max_steps: int = -1
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_length: int = 128
    seed: int = 0


ProgressFn = Callable[[int, int], None]


def _common_args(settings, out: str, n_rows: int) -> dict:
    return dict(
        output_dir=out, num_train_epochs=settings.epochs, max_steps=settings.max_steps,
        learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
        seed=settings.seed, use_cpu=True, bf16=False, activation_checkpointing=False,
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


def _atomic_save(trainer, tokenizer, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


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
        args = SFTConfig(**_common_args(settings, scratch, len(rows)), max_length=settings.max_length,
                         completion_only_loss=True, lr_scheduler_type=settings.lr_scheduler,
                         warmup_steps=settings.warmup_steps, dataset_num_proc=None)
        trainer = _quiet(SFTTrainer(model=model, args=args, processing_class=tokenizer,
                                    train_dataset=Dataset.from_list(rows),
                                    callbacks=_callbacks(progress) + list(callbacks or [])))
        result = trainer.train()
        _atomic_save(trainer, tokenizer, out_dir)
    return _history(trainer, result, settings)


def train_value(init: str | Path, rows: list[dict], out_dir: str | Path, settings: ValueSettings,
                *, progress: ProgressFn | None = None) -> dict:
    """Regress the scalar head by MSE at every labelled token; saves to `out_dir`; returns the history.

    A row is `{"segments": [[text, target | None], ...]}`: the texts concatenated form one state, and
    every token of a segment is trained towards its target (None: not trained), as TS-LLM trains its
    critic at every token. For a root-to-leaf path, each step's tokens carry that step's value, so the
    head learns where along a line a mistake happens, not only at the line's end. `{"text", "target"}`
    trains the last token only. Inference reads the last token (`*ForSequenceClassification`).
    `init` is a causal LM directory (the backbone; the head starts fresh) or a value model directory.
    """
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    if not rows:
        raise ValueError("no value targets: nothing to train the value model on")
    path = resolve_model(init)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, problem_type="regression")
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id
    dataset = Dataset.from_list([_token_labels(tokenizer, row, settings.max_length) for row in rows])
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(**_common_args(settings, scratch, len(rows)), lr_scheduler_type="cosine",
                                 remove_unused_columns=False)
        trainer = _quiet(_token_value_trainer(model=model, args=args, train_dataset=dataset,
                                              callbacks=_callbacks(progress),
                                              data_collator=_pad_collator(model.config.pad_token_id)))
        result = trainer.train()
        _atomic_save(trainer, tokenizer, out_dir)
    return _history(trainer, result, settings)


IGNORE = -100.0


def _token_labels(tokenizer, row: dict, max_length: int) -> dict:
    """Token ids and one label per token (IGNORE where untrained), cut to the last `max_length` tokens."""
    segments = row["segments"] if "segments" in row else [[row["text"], None]]
    ids: list[int] = []
    labels: list[float] = []
    for text, target in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += [IGNORE if target is None else float(target)] * len(piece)
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


def _token_value_trainer(**kwargs):
    """A Trainer taking the MSE at every labelled token (class built here: transformers loads lazily)."""
    from transformers import Trainer

    class TokenValueTrainer(Trainer):
        """MSE of the value head at every labelled token of a `*ForSequenceClassification` model."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            body = getattr(model, model.base_model_prefix)
            hidden = body(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
            values = model.score(hidden).squeeze(-1).float()
            keep = labels != IGNORE
            loss = ((values - labels) ** 2)[keep].mean()
            return (loss, values) if return_outputs else loss

    return TokenValueTrainer(**kwargs)


def _history(trainer, result, settings) -> dict:
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return {"train_loss": result.training_loss, "steps": trainer.state.global_step, "losses": losses,
            "settings": asdict(settings)}
