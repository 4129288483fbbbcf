"""How good must the value model be for search to win? Search on the testbed guided by step verifiers of
known quality, at equal generated-token budgets, against Self-Consistency and greedy decoding.

    python benchmarks/verifier_ceiling.py [--config configs/testbed.yaml] [--workdir work/report-full] \
        [--seeds 0 1 2] [--budgets 400 800] [--noise 0 1.5 3] [--value DIR] [--logprob [DIR]] [--calculator] \
        [--problems 200] [--plot docs/verifier-ceiling.png]

A diagnostic, not a result: the synthetic verifier reads the gold solution, which no search in treeflow
ever does. It scores a state +1 when every step so far is the gold solution's step
(`problems.arithmetic.on_track`, the label the value probes are measured with) and -1 otherwise, plus
Gaussian noise of sd `--noise` (fixed per state and seed), squashed by tanh into the value model's (-1, 1).
Noise 0 is a perfect process verifier; more noise lowers its AUC. `--value DIR` adds a learned value
model, `--logprob` the policy's own confidence (its least confident step), `--logprob DIR` that of another
causal LM (a verifier that knows more than the policy). `--calculator` adds a verifier that reads no gold
either: `search.verifiers.calculator_guard`, -1 for a state whose steps write an equation that does not
hold, else 0 (or, with `--logprob`, else the policy's confidence: one more level). For every verifier the
table gives its AUC over every state it scored and between siblings only (`models.metrics.sibling_auc`), the
choice a search makes at each node; the figure plots accuracy against the latter. Everything else is the flow's:
the cached testbed policy, T = 0.7, the methods' configurations, each batch's seeded sample stream, the
budgets. Self-Consistency and greedy never call a verifier, so they run once per seed.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import statistics
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDED = ["best_of_n_prm", "bfs_v", "mcts_alpha"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--workdir", default="work/report-full", help="its cache/ holds (or gets) the policy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[400, 800])
    parser.add_argument("--noise", type=float, nargs="*", default=[0.0, 1.5, 3.0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--value", default=None, help="also search with this learned value model directory")
    parser.add_argument("--logprob", nargs="?", const=True, default=None, metavar="DIR",
                        help="also search with the policy's own confidence in each step as the value, or with "
                             "that of the causal LM in DIR")
    parser.add_argument("--calculator", action="store_true",
                        help="also search with the calculator's check (before the policy's confidence: --logprob)")
    parser.add_argument("--plot", default=None, help="PNG path (default: <workdir>/verifier-ceiling.png)")
    args = parser.parse_args()

    from flows import env

    env.configure(args.workdir)
    from rich.console import Console
    from rich.table import Table

    from flows.config import load_config, method_configs
    from models.tiny import bootstrap

    t0 = time.perf_counter()
    config = load_config(args.config, {"workdir": args.workdir})
    policy_dir = str(bootstrap(config.tiny, config.paths["cache"]))
    configs = method_configs(config)
    # rows[(label, budget)]: per seed (accuracy %, tokens per problem)
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    aucs: dict[str, list[float]] = {}  # per verifier: AUC over all states it scored, and between siblings
    siblings: dict[str, list[float]] = {}
    value_model = None
    if args.value:
        from models.value import TransformersValue

        value_model = TransformersValue(args.value)
    levels: list[float | str | None] = [*args.noise, *([None] * (value_model is not None)),
                                        *([_logprob_label(args.logprob)] * bool(args.logprob)),
                                        *(CALCULATOR[:1 + bool(args.logprob)] if args.calculator else [])]
    for seed in args.seeds:
        problems = _problems(config, args.problems)
        greedy_acc = _run(config, policy_dir, problems, "greedy", configs["greedy"], [None], seed, None)[None]
        for budget in args.budgets:
            rows.setdefault(("greedy", budget), []).append(greedy_acc)
        for budget, point in _run(config, policy_dir, problems, "self_consistency", configs["self_consistency"],
                                  args.budgets, seed, None).items():
            rows.setdefault(("self_consistency", budget), []).append(point)
        for level in levels:
            model = verifier_model(level, value_model, policy_dir if args.logprob is True else args.logprob,
                                   [p.prompt for p in problems])
            verifier = Verifier(problems, level if isinstance(level, float) else 0.0, seed, model=model)
            for method in GUIDED:
                for budget, point in _run(config, policy_dir, problems, method, configs[method], args.budgets,
                                          seed, verifier).items():
                    rows.setdefault((f"{method}, {_level(level)}", budget), []).append(point)
            aucs.setdefault(_level(level), []).append(verifier.auc())
            siblings.setdefault(_level(level), []).append(verifier.sibling_auc())
    table = Table(title=f"{config.task.name}: search with a verifier of known quality ({args.problems} test "
                        f"problems, seeds {' '.join(map(str, args.seeds))}; mean ± sd %, tokens used)")
    table.add_column("method, verifier (AUC: all states, between siblings)")
    for budget in args.budgets:
        table.add_column(f"{budget} tokens", justify="right")
    for label in dict.fromkeys(label for label, _ in rows):
        level = label.split(", ", 1)[1] if ", " in label else None
        name = label if level is None else (f"{label} (AUC {statistics.fmean(aucs[level]):.2f}, siblings "
                                            f"{statistics.fmean(siblings[level]):.2f})")
        table.add_row(name, *(_cell(rows[(label, b)]) for b in args.budgets))
    console = Console(width=140)
    console.print(table)
    console.print(f"wall time {(time.perf_counter() - t0) / 60:.1f} min")
    _plot(rows, siblings, args.budgets, [_level(x) for x in levels],
          args.plot or f"{args.workdir}/verifier-ceiling.png",
          f"{config.task.name}: search with a verifier of known quality ({len(args.seeds)} seeds)")


class Verifier:
    """Scores states and records, for its AUC, whether each is on the gold path. Synthetic: +1 on the gold path,
    -1 off it, plus per-state Gaussian noise of sd `noise`, through tanh. With `model`: that value model."""

    def __init__(self, problems: list, noise: float = 0.0, seed: int = 0, model=None):
        self.by_prompt = {p.prompt: p for p in problems}
        self.noise, self.seed, self.model = noise, seed, model
        self.scored: dict[str, tuple[float, bool]] = {}

    def __call__(self, states: list[str]) -> list[float]:
        new = list(dict.fromkeys(s for s in states if s not in self.scored))
        labels = [self._label(s) for s in new]
        if self.model is not None:
            values = self.model.score(new) if new else []
        else:
            values = [math.tanh((1.0 if label else -1.0) + self.noise * self._gauss(s))
                      for s, label in zip(new, labels, strict=True)]
        self.scored.update(zip(new, zip(values, labels, strict=True), strict=True))
        return [self.scored[s][0] for s in states]

    def _label(self, state: str) -> bool:
        from problems.arithmetic import on_track

        prompt = state[:state.index("\n") + 1]
        return on_track(self.by_prompt[prompt], state[len(prompt):].splitlines(keepends=True))

    def _gauss(self, state: str) -> float:
        key = hashlib.sha256(f"{self.seed}/{state}".encode()).digest()
        return random.Random(int.from_bytes(key[:8], "little")).gauss(0.0, 1.0)

    def auc(self) -> float:
        """AUC over every state scored: on the gold path or not."""
        from models.metrics import roc_auc

        scores, labels = zip(*self.scored.values(), strict=True)
        return roc_auc(scores, labels)

    def sibling_auc(self) -> float | None:
        """The same between siblings only (`models.metrics.sibling_auc`): the choice a search makes."""
        from models.metrics import sibling_auc

        states = list(self.scored)
        return sibling_auc([self.scored[s][0] for s in states], [self.scored[s][1] for s in states],
                           [s[:s.rstrip("\n").rfind("\n") + 1] for s in states])


def _logprob_label(logprob: bool | str) -> str:
    return "policy log-prob" if logprob is True else "verifier LM log-prob"


#: the calculator's levels: alone, and in front of the policy's confidence
CALCULATOR = ["calculator", "calculator, then policy log-prob"]


def verifier_model(level: float | str | None, value_model, logprob_dir: str | None, prompts: list[str]):
    """What scores the states at one verifier level: the learned value model (None), a causal LM's confidence
    (a log-prob label), the calculator's check (alone or in front of that confidence), or nothing, for the
    synthetic verifier (a noise sd)."""
    from types import SimpleNamespace

    from search.verifiers import calculator_guard

    if level is None:
        return value_model
    if level in CALCULATOR:
        inner = LogProbScorer(logprob_dir).score if level == CALCULATOR[1] else None
        return SimpleNamespace(score=calculator_guard(inner, prompts))
    return LogProbScorer(logprob_dir) if isinstance(level, str) else None


def _level(noise: float | str | None) -> str:
    return "learned value" if noise is None else noise if isinstance(noise, str) else f"noise {noise:g}"


class LogProbScorer:
    """The policy's own confidence in a state's steps, as a process reward: each step's geometric mean token
    probability, the path's weakest step (min, as a PRM aggregates), mapped to 2 p - 1."""

    def __init__(self, policy_dir: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(policy_dir)
        self.model = AutoModelForCausalLM.from_pretrained(policy_dir).eval()

    def score(self, states: list[str]) -> list[float]:
        import torch

        tok = self.tokenizer
        out = []
        for start in range(0, len(states), 64):
            chunk = states[start:start + 64]
            ids = tok(chunk, add_special_tokens=False)["input_ids"]
            # token offsets where each line ends: the prompt's line, then one per step
            ends = [[len(tok(s[:i + 1], add_special_tokens=False)["input_ids"])
                     for i, c in enumerate(s) if c == "\n"] for s in chunk]
            width = max(map(len, ids))
            pad = tok.pad_token_id or 0
            batch = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
            with torch.inference_mode():
                logp = torch.log_softmax(self.model(input_ids=batch, attention_mask=mask).logits.float(), -1)
            for row, x, cuts in zip(logp, ids, ends, strict=True):
                steps = [[row[i - 1, x[i]].item() for i in range(a, b)] for a, b in pairwise(cuts) if b > a]
                out.append(2 * min((math.exp(sum(t) / len(t)) for t in steps), default=1.0) - 1)
        return out


def _problems(config, count: int) -> list:
    from problems import select_problems

    return select_problems(config.task.name, "test", 0, count, config.task.options)


def _run(config, policy_dir: str, problems: list, method: str, method_config, budgets: list[int], seed: int,
         verifier) -> dict[int, tuple[float, float]]:
    """Accuracy (%) and generated tokens per problem at each budget, sampled as the flow's search task does
    (`tasks.search.run_search`: the same per-batch streams, so these samples are the report's)."""
    from models.hf_policy import TransformersPolicy
    from search import METHODS, POOLED
    from search.sampling import sample_paths
    from tasks.search import stream_seed

    policy = TransformersPolicy.from_pretrained(policy_dir, temperature=config.policy.temperature, seed=seed,
                                                max_step_tokens=config.policy.max_step_tokens)
    if hasattr(method_config, "seed"):
        method_config = replace(method_config, seed=seed)
    correct = {b: 0 for b in budgets}
    tokens = {b: 0 for b in budgets}
    for i in range(0, len(problems), config.batch_size):
        batch = problems[i:i + config.batch_size]
        prompts, canonical = [p.prompt for p in batch], batch[0].canonical
        pool = None
        if method in POOLED:
            policy.reseed(stream_seed(seed, i, "pool"))
            pool = sample_paths(prompts, propose=policy.propose_steps, n=method_config.n,
                                temperature=method_config.temperature, max_depth=method_config.max_depth)
        for b in budgets:
            cfg = replace(method_config, token_budget=b) if b is not None else method_config
            if pool is not None:
                results = POOLED[method](prompts, pool, cfg, evaluate=verifier, canonical=canonical)
            else:
                policy.reseed(stream_seed(seed, i, b))
                results = METHODS[method][0](prompts, cfg, propose=policy.propose_steps, evaluate=verifier,
                                             canonical=canonical)
            correct[b] += sum(p.check(r.answer) for p, r in zip(batch, results, strict=True))
            tokens[b] += sum(r.generated_tokens for r in results)
    return {b: (100 * correct[b] / len(problems), tokens[b] / len(problems)) for b in budgets}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(points: list[tuple[float, float]]) -> str:
    mean, sd = _mean_sd([a for a, _ in points])
    return f"{mean:.1f} ± {sd:.1f} ({statistics.fmean(t for _, t in points):.0f} tok)"


def _plot(rows: dict, aucs: dict[str, list[float]], budgets: list[int], levels: list[str], path: str,
          title: str) -> None:
    """Accuracy against the verifier's AUC between siblings (`aucs`), one panel per budget: the synthetic
    verifiers as lines, the learned value model as stars, Self-Consistency as a band, greedy dashed."""
    from flows.figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.5), sharey=True, squeeze=False)
    colors = plt.get_cmap("tab10").colors
    synthetic = [level for level in levels if level.startswith("noise")]
    for ax, budget in zip(axes[0], budgets, strict=True):
        mean, sd = _mean_sd([a for a, _ in rows[("self_consistency", budget)]])
        ax.axhspan(mean - sd, mean + sd, color="grey", alpha=0.25)
        ax.axhline(mean, color="grey", label="Self-Consistency (± sd)")
        ax.axhline(rows[("greedy", budget)][0][0], color="black", linestyle="--", linewidth=1, label="greedy")
        for color, method in zip(colors, GUIDED, strict=False):
            points = [_mean_sd([a for a, _ in rows[(f"{method}, {level}", budget)]]) for level in synthetic]
            ax.errorbar([statistics.fmean(aucs[level]) for level in synthetic], [m for m, _ in points],
                        yerr=[e for _, e in points], marker="o", capsize=3, color=color, label=method)
            if "learned value" in levels:
                m, e = _mean_sd([a for a, _ in rows[(f"{method}, learned value", budget)]])
                ax.errorbar([statistics.fmean(aucs["learned value"])], [m], yerr=[e], marker="*", markersize=12,
                            capsize=3, color=color, linestyle="none")
        ax.set_title(f"{budget} generated tokens per problem")
        ax.set_xlabel("verifier AUC between sibling steps (stars: the learned value model)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
