"""A value model trained as an implicit PRM (PRIME; Yuan et al. 2024, "Free Process Rewards without Process
Labels") on the policy's rollouts: does a dense, token-level parameterisation learn what the scalar head does not,
which of two sibling steps is right?

    python benchmarks/implicit_prm.py [--config configs/testbed.yaml] [--workdir work/implicit-prm] \
        [--cache work/cache] [--problems 1000] [--rollouts 8] [--beta 0.05] [--lr 5e-4] [--epochs 2] \
        [--test 200] [--budgets 400 800] [--seed 0]

The implicit PRM is a copy of the policy, theta, read against the policy itself (the reference): a state's value
is 2 sigmoid(beta * sum_t log theta(y_t) / ref(y_t) + b) - 1 over the tokens of its steps. theta and the bias b
are trained by cross-entropy on whether each rollout (`--rollouts` per training problem at the config's
temperature, the data the flow's first value model is trained from) ends in an answer that checks. The outcome
label so reaches every token's log-probability, where next-token training put what the policy knows of
arithmetic, and the wrong rollouts teach it too, which SFT on correct traces never sees. Then, as
`verifier_ceiling.py` runs them (same policy, streams, budgets, methods): greedy, Self-Consistency, and the
value-guided searches on `--test` test problems guided by the implicit PRM, by the trained theta's own confidence,
and by the policy's confidence for reference, each verifier with its AUC over every state it scored and between
siblings (labelled as `verifier_ceiling.py` labels them: is every step right; measurement only). First it says
what the rollouts' outcome labels say of their steps (`describe`): on the testbed a right answer is often reached
through a wrong step.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--workdir", default="work/implicit-prm")
    parser.add_argument("--cache", default="work/cache", help="where the config's bootstrap is (or goes)")
    parser.add_argument("--problems", type=int, default=1000, help="training problems with rollouts")
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--beta", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--budgets", type=int, nargs="+", default=[400, 800])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from flows import env

    env.configure(args.workdir)
    import verifier_ceiling as vc

    from flows.config import load_config, method_configs
    from models.tiny import bootstrap

    t0 = time.perf_counter()
    config = load_config(args.config, {"workdir": args.workdir, "cache_dir": args.cache})
    policy_dir = str(bootstrap(config.tiny, config.paths["cache"]))
    rows = rollouts(config, policy_dir, args.problems, args.rollouts, args.seed,
                    Path(args.workdir) / f"rollouts-{args.problems}x{args.rollouts}-s{args.seed}.json")
    print(f"{describe(config, rows, vc.LogProbScorer(policy_dir))} ({time.perf_counter() - t0:.0f} s)", flush=True)
    prm = ImplicitPRM.train(policy_dir, rows, beta=args.beta, lr=args.lr, epochs=args.epochs, seed=args.seed)
    print(f"trained ({time.perf_counter() - t0:.0f} s)", flush=True)
    problems = vc._problems(config, args.test)
    configs = method_configs(config)

    def run(method: str, budgets: list, verifier) -> dict:
        return vc._run(config, policy_dir, problems, method, configs[method], budgets, args.seed, verifier)

    print(f"greedy {run('greedy', [None], None)}; self_consistency {run('self_consistency', args.budgets, None)}")
    for name, model in (("implicit PRM", prm), ("theta's confidence", Confidence(prm)),
                        ("policy's confidence", vc.LogProbScorer(policy_dir))):
        verifier = vc.Verifier(problems, 0.0, args.seed, model=model)
        for method in vc.GUIDED:
            print(f"{name}, {method}: {run(method, args.budgets, verifier)}", flush=True)
        print(f"{name}: AUC {verifier.auc():.3f}, between siblings {verifier.sibling_auc():.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


def rollouts(config, policy_dir: str, problems: int, n: int, seed: int, cache: Path) -> list[dict]:
    """`n` sampled solutions per training problem, each `{"prompt", "completion", "label"}` (its answer checks)."""
    from models.hf_policy import TransformersPolicy
    from problems import select_problems
    from problems.steps import final_answer
    from search.sampling import sample_paths

    if cache.is_file():
        return json.loads(cache.read_text())
    policy = TransformersPolicy.from_pretrained(policy_dir, temperature=config.policy.temperature, seed=seed)
    rows = []
    todo = select_problems(config.task.name, "train", 0, problems, config.task.options)
    for i in range(0, len(todo), 64):
        batch = todo[i:i + 64]
        pool = sample_paths([p.prompt for p in batch], propose=policy.propose_steps, n=n,
                            temperature=config.policy.temperature, max_depth=config.search.max_depth)
        for p, paths in zip(batch, pool, strict=True):
            rows += [{"prompt": p.prompt, "completion": "".join(c.text for c in path),
                      "label": bool(path) and p.check(final_answer(path[-1].text))} for path in paths]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows))
    return rows


def describe(config, rows: list[dict], confidence) -> str:
    """What the rollouts' outcome labels say about their steps: how many right answers hold a wrong step, how often
    a right (or wrong) first step ends in a right answer, and how well the policy's `confidence` in its weakest
    step tells the distinct right answers whose every step is right from the others (AUC)."""
    from models.metrics import roc_auc
    from problems import select_problems

    count = len({r["prompt"] for r in rows})
    problems = {p.prompt: p for p in select_problems(config.task.name, "train", 0, count, config.task.options)}
    right = [r for r in rows if r["label"]]
    steps = [problems[r["prompt"]].steps_right(r["completion"].splitlines(keepends=True)) for r in right]
    after = {True: [], False: []}  # first step right -> outcomes
    for r in rows:
        first = r["completion"].splitlines(keepends=True)[:1]
        if first:
            after[bool(problems[r["prompt"]].steps_right(first))].append(r["label"])
    distinct = list({(r["prompt"], r["completion"]): r for r in right})
    faithful = [problems[p].steps_right(c.splitlines(keepends=True)) for p, c in distinct]
    auc = roc_auc(confidence.score([p + c for p, c in distinct]), faithful)
    rate = lambda xs: f"{100 * sum(xs) / max(1, len(xs)):.1f} %"  # noqa: E731
    return (f"{len(rows)} rollouts, {len(right)} with the right answer, {len(right) - sum(steps)} of them through "
            f"a wrong step; a right answer follows {rate(after[True])} of right first steps and "
            f"{rate(after[False])} of wrong ones; the policy's confidence tells the {sum(faithful)} of "
            f"{len(distinct)} distinct right answers whose every step is right from the others at AUC {auc:.3f}")


class ImplicitPRM:
    """theta against the reference policy: a state's value from the summed log-ratio of its step tokens."""

    def __init__(self, theta, reference, tokenizer, beta: float, bias: float):
        self.theta, self.reference, self.tokenizer, self.beta, self.bias = theta, reference, tokenizer, beta, bias

    @classmethod
    def train(cls, policy_dir: str, rows: list[dict], *, beta: float, lr: float, epochs: float,
              seed: int) -> ImplicitPRM:
        """theta (from the policy) and the bias, by cross-entropy of the rollout-level logit on the labels."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(policy_dir)
        reference = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
        theta = AutoModelForCausalLM.from_pretrained(policy_dir)
        torch.manual_seed(seed)
        data = list({(r["prompt"], r["completion"]): r for r in rows}.values())
        texts = [r["prompt"] + r["completion"] for r in data]
        starts = [len(tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]) for r in data]
        with torch.inference_mode():
            ref_sums = [sum(x) for x in token_logprobs(reference, tokenizer, texts, starts)]
        positive = sum(r["label"] for r in rows) / len(rows)
        bias = torch.nn.Parameter(torch.tensor(math.log(positive / (1 - positive))))
        optimizer = torch.optim.AdamW([*theta.parameters(), bias], lr=lr, weight_decay=0.0)
        steps = math.ceil(len(data) / 64 * epochs)
        cosine = lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))  # noqa: E731
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        order: list[int] = []
        rng = random.Random(seed)
        theta.train()
        for _ in range(steps):
            if not order:
                order = rng.sample(range(len(data)), len(data))
            batch, order = order[:64], order[64:]
            sums = torch.stack([sum(x) for x in token_logprobs(theta, tokenizer, [texts[i] for i in batch],
                                                                [starts[i] for i in batch], grad=True)])
            logit = beta * (sums - torch.tensor([ref_sums[i] for i in batch])) + bias
            labels = torch.tensor([float(data[i]["label"]) for i in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        return cls(theta.eval(), reference, tokenizer, beta, bias.item())

    def score(self, states: list[str]) -> list[float]:
        import torch

        starts = prompt_lengths(self.tokenizer, states)
        with torch.inference_mode():
            mine = token_logprobs(self.theta, self.tokenizer, states, starts)
            ref = token_logprobs(self.reference, self.tokenizer, states, starts)
        return [2 / (1 + math.exp(-(self.beta * float(sum(a) - sum(b)) + self.bias))) - 1
                for a, b in zip(mine, ref, strict=True)]


class Confidence:
    """The trained theta's own confidence in a state's steps: their geometric-mean token probability, 2 p - 1."""

    def __init__(self, prm: ImplicitPRM):
        self.prm = prm

    def score(self, states: list[str]) -> list[float]:
        import torch

        tok = self.prm.tokenizer
        starts = prompt_lengths(tok, states)
        with torch.inference_mode():
            rows = token_logprobs(self.prm.theta, tok, states, starts)
        return [2 * math.exp(float(sum(x)) / max(1, len(x))) - 1 for x in rows]


def prompt_lengths(tokenizer, states: list[str]) -> list[int]:
    """Tokens of each state's prompt (its first line): where its steps start."""
    return [len(tokenizer(s[:s.index("\n") + 1], add_special_tokens=False)["input_ids"]) for s in states]


def token_logprobs(model, tokenizer, texts: list[str], starts: list[int], grad: bool = False) -> list:
    """Per text, the log-probabilities of its tokens from `starts[i]` on (a tensor row each; scalars summed by the
    caller). Batches of 128 without `grad`; the whole list at once with it (one training batch)."""
    import torch

    out = []
    size = len(texts) if grad else 128
    for s in range(0, len(texts), size):
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[s:s + size]]
        width = max(map(len, ids))
        pad = tokenizer.pad_token_id or 0
        x = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
        logp = torch.log_softmax(model(input_ids=x, attention_mask=mask).logits.float(), -1)
        picked = logp[:, :-1].gather(-1, x[:, 1:, None])[..., 0]
        out += [row[start - 1:len(i) - 1] for row, i, start in zip(picked, ids, starts[s:s + size], strict=True)]
    return out


if __name__ == "__main__":
    main()
