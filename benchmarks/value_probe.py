"""How well can a value model learn to rank steps? Held-out AUC of one training recipe, outside the flow.

    python benchmarks/value_probe.py --policy DIR [--init DIR] [--targets mc|hard|demo] [--last-token]
                                     [--train 2000] [--n 8] [--epochs 1] [--lr 1e-3]

Rollouts: n samples (T = 0.7) on `--train` chain-arithmetic train problems from `--policy`. Targets per
state: the mean outcome of the rollouts through it (mc), or whether any was correct (hard,
Math-Shepherd's hard estimate); `demo` instead labels one random prefix of each of `--train` x 20 noisy
demonstrations (50 % with a wrong step) by the generator's knowledge of where the error is. Training:
every token of each step (TS-LLM's critic), or the last token of each state (`--last-token`), from
`--init` (default: the policy). Held-out: every prefix of 4 samples on 300 test problems, labelled by
`problems.arithmetic.on_track` (measurement only). The figures in docs/testbed.md came from these runs.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--init", default=None)
    parser.add_argument("--targets", choices=["mc", "hard", "demo"], default="mc")
    parser.add_argument("--last-token", action="store_true")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="work/value-probe")
    args = parser.parse_args()

    from flows import env

    env.configure()
    import torch

    from models.hf_policy import TransformersPolicy
    from models.metrics import roc_auc
    from models.training import ValueSettings, train_value
    from models.value import TransformersValue
    from problems.arithmetic import generate, on_track, solution_steps
    from problems.steps import final_answer
    from search.sampling import sample_paths

    torch.manual_seed(0)
    policy = TransformersPolicy.from_pretrained(args.policy, temperature=0.7)

    def rollouts(problems, n):
        t0 = time.perf_counter()
        paths = sample_paths([p.prompt for p in problems], propose=policy.propose_steps, n=n, temperature=0.7,
                             max_depth=6)
        print(f"rollouts {len(problems)} x {n}: {time.perf_counter() - t0:.0f} s", flush=True)
        return [[[c.text for c in path] for path in group] for group in paths]

    if args.targets == "demo":
        rng = random.Random(7)
        rows = []
        for p in generate(args.train * 20, split="demo"):
            steps = solution_steps(p, rng=rng, error_rate=0.5)
            d = rng.randint(1, len(steps))
            rows.append({"text": p.prompt + "".join(steps[:d]), "target": float(on_track(p, steps[:d]))})
    else:
        train = generate(args.train, split="train")
        outcomes, paths = defaultdict(list), set()
        for p, group in zip(train, rollouts(train, args.n), strict=True):
            for steps in group:
                ok = p.check(final_answer(steps[-1]) or "")
                paths.add((p.prompt, tuple(steps)))
                for d in range(1, len(steps) + 1):
                    outcomes[p.prompt + "".join(steps[:d])].append(ok)
        value = {s: (max(v) if args.targets == "hard" else sum(v) / len(v)) for s, v in outcomes.items()}
        if args.last_token:
            rows = [{"text": s, "target": float(t)} for s, t in value.items()]
        else:
            rows = [{"segments": [[prompt, None]] + [[step, float(value[prompt + "".join(steps[:d + 1])])]
                                                     for d, step in enumerate(steps)]}
                    for prompt, steps in sorted(paths)]
    t0 = time.perf_counter()
    history = train_value(args.init or args.policy, rows, args.out,
                          ValueSettings(epochs=args.epochs, learning_rate=args.lr, batch_size=64))
    print(f"{len(rows)} rows, {history['steps']} steps in {time.perf_counter() - t0:.0f} s, "
          f"loss {history['train_loss']:.4f}")

    test = generate(300, split="test")
    states, labels = [], []
    for p, group in zip(test, rollouts(test, 4), strict=True):
        for steps in group:
            for d in range(1, len(steps) + 1):
                states.append(p.prompt + "".join(steps[:d]))
                labels.append(on_track(p, steps[:d]))
    scores = TransformersValue(args.out).score(states)
    print(f"held-out AUC {roc_auc(scores, labels):.3f} on {len(labels)} prefixes "
          f"({100 * sum(labels) / len(labels):.0f} % on track)")


if __name__ == "__main__":
    main()
