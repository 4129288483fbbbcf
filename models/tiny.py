"""The built-in tiny policy: a small GPT-2-shaped LM from config, bootstrapped on noisy demonstrations.

Everything is made in-process (tokenizer, model, data), so treeflow runs on a CPU with no downloads.
The demonstrations deliberately contain wrong steps, so the bootstrapped policy is imperfect: its
greedy accuracy sits well below what sampling many times can reach, which is the headroom search and
self-training exploit. The result is cached in a directory named by a content hash of the recipe.

The testbed's bootstrap (configs/testbed.yaml) is also shipped in `models/assets/tiny-<hash>/`, with a
SHA-256 manifest of its files, so a fresh machine starts from it instead of training for ten minutes; it
is verified file by file before use, and `bootstrap(..., retrain=True)` makes it again from the recipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.training import SFTSettings, atomic_dir, planned_steps, train_policy, without_later_defaults
from problems.arithmetic import ArithmeticConfig, generate, solution_steps
from problems.countdown import CountdownConfig
from problems.countdown import demonstrations as countdown_demonstrations

RECIPE_VERSION = 2


@dataclass(frozen=True)
class TinyRecipe:
    """Model shape, demonstration data and training length of the bootstrap policy."""

    #: transformer layers of the tiny GPT-2
    n_layer: int = 4
    #: its hidden width
    n_embd: int = 128
    #: its attention heads
    n_head: int = 4
    #: its context length in tokens
    n_positions: int = 128
    #: demonstrations it is bootstrapped on
    n_demos: int = 50000
    #: fraction of demonstrations that carry one wrong step (the headroom search and self-training use)
    error_rate: float = 0.2
    #: how the demonstrations' problems are drawn
    task: ArithmeticConfig = field(default_factory=ArithmeticConfig)
    #: the bootstrap's SFT
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(
        epochs=1.0, learning_rate=2e-3, batch_size=64, warmup_steps=0.02, max_length=128))
    #: seed of the weights' initialisation and of which demonstrations get a wrong step
    seed: int = 0
    #: end the bootstrap after this many optimizer steps of the full run's schedule (None: the whole run)
    stop_step: int | None = None
    #: bootstrap on Countdown puzzles drawn so (each demonstration the random play that made its puzzle, all
    #: correct: `error_rate` must be 0) instead of on chain arithmetic (`task`)
    countdown: CountdownConfig | None = None

    def __post_init__(self):
        if self.countdown is not None and self.error_rate:
            raise ValueError("error_rate: Countdown demonstrations are exact plays; set it to 0 with `countdown`")

    @property
    def task_name(self) -> str:
        """The task the bootstrap policy is trained on."""
        return "arithmetic" if self.countdown is None else "countdown"

    def digest(self) -> str:
        """Content hash of the recipe (and the recipe code's version): names the cache directory."""
        fields = _typed(self)
        for added_later in ("stop_step", "countdown"):  # unset, they keep older recipes' hashes (and caches)
            if fields[added_later] is None:
                del fields[added_later]
        fields["sft"] = without_later_defaults(fields["sft"])  # so do training settings at their defaults
        blob = json.dumps({"v": RECIPE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def recipe_record(recipe: TinyRecipe) -> dict:
    """The recipe as its model directory records it: training settings added later are left out at their
    defaults, so a retrain of an older recipe writes the same record, byte for byte."""
    out = asdict(recipe)
    out["sft"] = without_later_defaults(out["sft"])
    return out


def _typed(obj) -> dict:
    """A dataclass as a dict with each float-typed field a float, so `epochs: 1` and `epochs: 1.0` (a YAML
    file and Python) name the same recipe."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = _typed(value)
        elif isinstance(value, int) and not isinstance(value, bool) and str(f.type).startswith("float"):
            value = float(value)
        out[f.name] = value
    return out


def bootstrap_steps(recipe: TinyRecipe) -> int:
    """Optimizer steps the bootstrap takes (the full schedule, or up to `stop_step`)."""
    steps = planned_steps(recipe.sft, recipe.n_demos)
    return min(steps, recipe.stop_step or steps)


def demonstrations(recipe: TinyRecipe) -> list[dict]:
    """`{"prompt", "completion"}` demonstrations from the task's `demo` split (noisy ones for arithmetic)."""
    if recipe.countdown is not None:
        return countdown_demonstrations(recipe.n_demos, config=recipe.countdown)
    rng = random.Random(recipe.seed)
    problems = generate(recipe.n_demos, split="demo", config=recipe.task)
    return [{"prompt": p.prompt, "completion": "".join(solution_steps(p, rng=rng, error_rate=recipe.error_rate))}
            for p in problems]


def build(recipe: TinyRecipe, texts: list[str]):
    """A fresh (untrained) model and the tokenizer trained on `texts`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(texts)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=recipe.n_positions, n_embd=recipe.n_embd, n_layer=recipe.n_layer,
        n_head=recipe.n_head, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(recipe.seed)
    return GPT2LMHeadModel(config), tokenizer


def untrained(recipe: TinyRecipe, out: str | Path) -> Path:
    """A model directory of `recipe`'s shape and tokenizer, its weights untrained (a fresh backbone)."""
    model, tokenizer = build(recipe, [r["prompt"] + r["completion"] for r in demonstrations(recipe)])
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)


def _StopAt(step: int):  # noqa: N802 - a callback instance, built lazily to keep transformers off import
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= step:
                control.should_training_stop = True

    return StopAt()


#: bootstrapped policies shipped with treeflow, one directory per recipe hash, each with its manifest
ASSETS = Path(__file__).resolve().parent / "assets"
MANIFEST = "treeflow_manifest.sha256"
#: what a shipped directory holds: the model and tokenizer files and the recipe record, no training state
SHIPPED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "treeflow_recipe.json")


def cached(recipe: TinyRecipe, cache_dir: str | Path) -> Path | None:
    """The cached policy directory for `recipe`, if it was bootstrapped before (to the end: the recipe record
    is written last)."""
    out = Path(cache_dir) / f"tiny-{recipe.digest()}" / "policy"
    return out if (out / "config.json").is_file() and (out / "treeflow_recipe.json").is_file() else None


def shipped(recipe: TinyRecipe, assets: str | Path | None = None) -> Path | None:
    """The shipped policy directory for `recipe` (under `assets`, default `ASSETS`), if there is one."""
    out = Path(assets or ASSETS) / f"tiny-{recipe.digest()}"
    return out if (out / MANIFEST).is_file() else None


def file_digests(directory: str | Path) -> dict[str, str]:
    """SHA-256 of each of a policy directory's shipped files that it holds, by file name."""
    directory = Path(directory)
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
            for name in SHIPPED_FILES if (directory / name).is_file()}


def verify(directory: str | Path) -> None:
    """Check every file of a shipped directory against its manifest; a missing or changed file raises
    `ModelDirError` naming it."""
    from models.errors import ModelDirError

    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise ModelDirError(f"{directory}: no {MANIFEST}, so its files cannot be verified")
    expected = dict(reversed(line.split(maxsplit=1)) for line in manifest.read_text().splitlines() if line.strip())
    actual = file_digests(directory)
    for name, digest in sorted(expected.items()):
        if name not in actual:
            raise ModelDirError(f"{directory / name}: listed in {MANIFEST} but missing")
        if actual[name] != digest:
            raise ModelDirError(f"{directory / name}: SHA-256 {actual[name][:12]}... is not the manifest's "
                                f"{digest[:12]}... (the file was changed or damaged)")
    if "model.safetensors" not in expected or "treeflow_recipe.json" not in expected:
        raise ModelDirError(f"{manifest}: must list model.safetensors and treeflow_recipe.json")


def ship(policy_dir: str | Path, assets: str | Path | None = None) -> Path:
    """Copy a bootstrapped policy directory into `assets` (default `ASSETS`), named by its recipe hash, with its
    manifest."""
    policy_dir = Path(policy_dir)
    digest = json.loads((policy_dir / "treeflow_recipe.json").read_text())["digest"]

    def write(tmp: Path) -> None:
        for name in SHIPPED_FILES:
            if (policy_dir / name).is_file():
                shutil.copy2(policy_dir / name, tmp / name)
        (tmp / MANIFEST).write_text("".join(f"{d}  {n}\n" for n, d in file_digests(tmp).items()))

    return atomic_dir(Path(assets or ASSETS) / f"tiny-{digest}", write)


def bootstrap(recipe: TinyRecipe, cache_dir: str | Path, *, progress=None, retrain: bool = False,
              assets: str | Path | None = None) -> Path:
    """The bootstrapped policy directory for `recipe` in `cache_dir`: the cached one; else the shipped one,
    verified and copied in; else (or with `retrain`) trained from the recipe."""
    out = Path(cache_dir) / f"tiny-{recipe.digest()}" / "policy"
    if not retrain and cached(recipe, cache_dir) is not None:
        return out
    if not retrain and (source := shipped(recipe, assets)) is not None:
        verify(source)
        return atomic_dir(out, lambda tmp: [shutil.copy2(source / name, tmp / name)
                                            for name in SHIPPED_FILES if (source / name).is_file()])
    rows = demonstrations(recipe)
    model, tokenizer = build(recipe, [r["prompt"] + r["completion"] for r in rows])
    callbacks = [] if recipe.stop_step is None else [_StopAt(recipe.stop_step)]
    history = train_policy(model, rows, out, recipe.sft, tokenizer=tokenizer, progress=progress,
                           callbacks=callbacks)
    (out / "treeflow_recipe.json").write_text(json.dumps(
        {"recipe": recipe_record(recipe), "digest": recipe.digest(), "train_loss": history["train_loss"],
         "steps": history["steps"]}, indent=2))
    return out
