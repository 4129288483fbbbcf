"""Self-training against its control where demonstrations are few: do the policy's own correct traces teach it more
than further epochs on the demonstrations it has, and does it matter that many of them hold a wrong step?

    python benchmarks/scarce_demos.py [--config configs/testbed.yaml] [--cache work/cache] \
        [--workdir work/scarce] [--demos 1000] [--stage-epochs 8] [--seeds 0 1 2] [--rounds 3] \
        [--problems 1024] [--samples 10] [--rows 2000] [--traces all faithful confident checked] [--retest 2000] \
        [--confident-share 0.5]

The start: the config's cached bootstrap (the noisy-demonstration policy, treated as the pretrained model), given
one more SFT stage on `--demos` clean demonstrations (problems of the demo split past the bootstrap's own) for
`--stage-epochs` epochs at lr 1e-3: a policy with few worked solutions behind it and many questions with answers
ahead. Then, per seed and per kind of traces, `--rounds` rounds of self-training as ReST-EM does it: `--samples`
samples at the config's temperature for each of `--problems` fresh training problems, the distinct ones whose
answer checks kept (`all`), or only those whose every step is also right (`faithful`: a diagnostic filter that
reads the gold solution through `Problem.steps_right`; no flow does this), or the most confident
`--confident-share` of them by the policy's least confident step (`confident`: reads no gold, so a flow could do
it), or those whose every written equation holds by a calculator (`checked`: reads no gold either,
`sft_filter.equations` in a flow), and one SFT with the config's settings on exactly `--rows` rows: the traces,
filled up with clean demonstrations. The control trains from the same start, round for round, on `--rows` clean
demonstrations alone, so every arm takes the same optimizer steps. Every policy is decoded greedily on the first
`--retest` test problems. Prints per round each arm's accuracy (mean ± sd over seeds), the per-seed gaps to the
control, and the traces kept (how many, and what share has every step right).
Trained policies, what each arm kept and every accuracy are cached in `--workdir`: a rerun only adds what is new.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("all", "faithful", "confident", "checked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--cache", default="work/cache", help="where the config's bootstrap is (or goes)")
    parser.add_argument("--workdir", default="work/scarce")
    parser.add_argument("--demos", type=int, default=1000, help="clean demonstrations of the SFT stage")
    parser.add_argument("--stage-epochs", type=float, default=8.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--problems", type=int, default=1024, help="fresh training problems per round")
    parser.add_argument("--samples", type=int, default=10, help="samples per problem")
    parser.add_argument("--rows", type=int, default=2000, help="rows of every round's SFT, in both arms")
    parser.add_argument("--traces", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--retest", type=int, default=2000, help="test problems each policy is decoded on")
    parser.add_argument("--confident-share", type=float, default=0.5,
                        help="share of each round's correct traces the `confident` arm keeps")
    args = parser.parse_args()
    if min(args.demos, args.rounds, args.problems, args.samples, args.rows, args.retest) < 1:
        raise SystemExit("--demos, --rounds, --problems, --samples, --rows and --retest must be >= 1")
    if not 0 < args.confident_share <= 1:
        raise SystemExit(f"--confident-share must be in (0, 1], got {args.confident_share}")

    from flows import env

    env.configure(args.workdir)
    from flows.config import load_config

    config = load_config(args.config, {"workdir": args.workdir, "cache_dir": args.cache})
    if config.tiny.task_name != "arithmetic":
        raise SystemExit(f"{args.config}: the tiny policy is bootstrapped on {config.tiny.task_name}; this "
                         "benchmark draws clean chain-arithmetic demonstrations")
    t0 = time.perf_counter()
    demos = clean_demonstrations(config, args.demos)
    start = stage_policy(config, demos, args.stage_epochs, Path(args.workdir))
    test = _problems(config, "test", 0, args.retest)
    accuracy = Accuracy(Path(args.workdir) / "accuracy.json", test)
    base = accuracy(start)
    print(f"start: {start} greedy {base:.1f} % on {len(test)} test problems ({time.perf_counter() - t0:.0f} s)",
          flush=True)
    # per (arm, round): one entry per seed; arms are the kinds of traces and "control"
    figures: dict[tuple[str, int], list[float]] = {}
    kept: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for seed in args.seeds:
        settings = dataclasses.replace(config.sft, seed=seed)
        arms = {kind: start for kind in [*args.traces, "control"]}
        for r in range(1, args.rounds + 1):
            problems = _problems(config, "train", (r - 1) * args.problems, args.problems)
            stream = seed * 1000 + r
            sample = Sampler(problems, args.samples, config.policy.temperature, stream)
            for kind in arms:
                out = Path(args.workdir) / f"seed{seed}" / f"{kind}-r{r}"
                if kind == "control":
                    rows = fill([], demos, args.rows, random.Random(stream))
                    arms[kind] = train(arms[kind], rows, out, settings)
                else:
                    arms[kind], size = self_train(arms[kind], kind, out, sample, demos, args.rows,
                                                  random.Random(stream), settings, args.confident_share)
                    kept.setdefault((kind, r), []).append(size)
                figures.setdefault((kind, r), []).append(accuracy(arms[kind]))
            print(f"seed {seed} round {r}: " + ", ".join(f"{k} {figures[(k, r)][-1]:.1f} %" for k in arms)
                  + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    report(figures, kept, args, base)
    print(f"wall time {(time.perf_counter() - t0) / 60:.1f} min")


def clean_demonstrations(config, count: int) -> list[dict]:
    """`count` error-free demonstrations of demo-split problems the bootstrap never saw (those past its own)."""
    from problems.arithmetic import generate, solution_steps

    skip = config.tiny.n_demos
    return [{"prompt": p.prompt, "completion": "".join(solution_steps(p))}
            for p in generate(skip + count, split="demo", config=config.tiny.task)[skip:]]


def stage_policy(config, demos: list[dict], epochs: float, workdir: Path) -> str:
    """The bootstrap after one SFT stage on `demos` (cached by the stage's settings)."""
    from models.tiny import bootstrap
    from models.training import SFTSettings

    base = str(bootstrap(config.tiny, config.paths["cache"]))
    settings = SFTSettings(epochs=epochs, learning_rate=1e-3, batch_size=64, warmup_steps=0.02,
                           max_length=config.tiny.sft.max_length)
    return train(base, demos, workdir / f"stage-{config.tiny.digest()}-d{len(demos)}-e{epochs:g}", settings)


def train(init: str, rows: list[dict], out: Path, settings) -> str:
    """SFT `init` on `rows` into `out`, unless a finished model is there already."""
    from models.training import train_policy

    if not (out / "config.json").is_file():
        train_policy(init, rows, out, settings)
    return str(out)


class Sampler:
    """A round's correct traces of a policy directory (`correct_traces`), sampled once per directory: every arm's
    first round samples the same start with the same seed."""

    def __init__(self, problems: list, samples: int, temperature: float, seed: int):
        self.problems, self.samples, self.temperature, self.seed = problems, samples, temperature, seed
        self.sampled: dict[str, list[dict]] = {}

    def __call__(self, policy_dir: str) -> list[dict]:
        if policy_dir not in self.sampled:
            from models.hf_policy import TransformersPolicy

            policy = TransformersPolicy.from_pretrained(policy_dir, temperature=self.temperature, seed=self.seed)
            self.sampled[policy_dir] = correct_traces(policy, self.problems, self.samples)
        return self.sampled[policy_dir]


def self_train(init: str, kind: str, out: Path, sample, demos: list[dict], rows: int, rng: random.Random,
               settings, share: float) -> tuple[str, tuple[int, float]]:
    """One round of an arm: SFT `init` on the traces `kind` keeps of `sample(init)`, filled up to `rows` with
    demonstrations. Returns the policy and what it kept (how many, the share with every step right), both read
    back from `out` when it was trained before."""
    summary = out.with_name(out.name + ".kept.json")
    if (out / "config.json").is_file() and summary.is_file():
        return str(out), tuple(json.loads(summary.read_text()))
    traces = select(sample(init), kind, share)
    size = (len(traces), statistics.fmean(t["steps_right"] for t in traces) if traces else 0.0)
    policy = train(init, fill([{"prompt": t["prompt"], "completion": t["completion"]} for t in traces], demos,
                              rows, rng), out, settings)
    summary.write_text(json.dumps(size))
    return policy, size


def fill(traces: list[dict], demos: list[dict], rows: int, rng: random.Random) -> list[dict]:
    """`rows` SFT rows: the traces (the first `rows` of them), then demonstrations, cycling through them in an
    order `rng` shuffles."""
    order = list(range(len(demos)))
    rng.shuffle(order)
    extra = [demos[order[i % len(order)]] for i in range(max(0, rows - len(traces)))]
    return traces[:rows] + extra


def correct_traces(policy, problems: list, samples: int) -> list[dict]:
    """The distinct solutions `policy` samples (at its own temperature) whose answer checks, each with
    `steps_right` (read from the gold solution) and `min_logprob` (the policy's least confident step: the lowest
    mean token log-prob of a step along it)."""
    from problems.steps import final_answer
    from search.sampling import sample_paths

    found: dict[tuple[str, str], dict] = {}
    for i in range(0, len(problems), 64):
        batch = problems[i:i + 64]
        pool = sample_paths([p.prompt for p in batch], propose=policy.propose_steps, n=samples, temperature=None,
                            max_depth=8)
        for p, paths in zip(batch, pool, strict=True):
            for path in paths:
                if path and p.check(final_answer(path[-1].text)):
                    steps = [c.text for c in path]
                    completion = "".join(steps)
                    found.setdefault((p.prompt, completion), {
                        "prompt": p.prompt, "completion": completion, "steps_right": bool(p.steps_right(steps)),
                        "min_logprob": min(c.logprob for c in path)})
    return list(found.values())


def select(traces: list[dict], kind: str, share: float = 0.5) -> list[dict]:
    """The traces an arm trains on: `all`; `faithful`, those whose every step is right (reads the gold solution);
    `confident`, the most confident `share` of them by the policy's weakest step (reads no gold: a filter a flow
    could run, `sft_filter.min_logprob` with a per-round threshold); `checked`, those whose every written equation
    holds by a calculator's arithmetic (reads no gold: `sft_filter.equations`)."""
    if kind == "all":
        return list(traces)
    if kind == "faithful":
        return [t for t in traces if t["steps_right"]]
    if kind == "confident":
        keep = round(share * len(traces))
        return sorted(traces, key=lambda t: -t["min_logprob"])[:keep]
    if kind == "checked":
        from problems.steps import equations_hold

        return [t for t in traces if equations_hold(t["completion"])]
    raise ValueError(f"unknown kind of traces {kind!r}; expected one of {', '.join(KINDS)}")


class Accuracy:
    """Greedy accuracy (%) of a policy directory on the test problems, kept in a JSON file by directory."""

    def __init__(self, path: Path, problems: list):
        self.path, self.problems = path, problems
        self.known = json.loads(path.read_text()) if path.is_file() else {}

    def __call__(self, policy_dir: str) -> float:
        key = f"{policy_dir}@{len(self.problems)}"
        if key not in self.known:
            from models.hf_policy import TransformersPolicy
            from search.sampling import SamplingConfig, greedy

            policy = TransformersPolicy.from_pretrained(policy_dir)
            right = 0
            for i in range(0, len(self.problems), 256):
                batch = self.problems[i:i + 256]
                results = greedy([p.prompt for p in batch], SamplingConfig(max_depth=8),
                                 propose=policy.propose_steps)
                right += sum(p.check(r.answer) for p, r in zip(batch, results, strict=True))
            self.known[key] = 100 * right / len(self.problems)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.known, indent=1))
        return self.known[key]


def _problems(config, split: str, start: int, count: int) -> list:
    from problems import select_problems

    return select_problems(config.task.name, split, start, count, config.task.options)


def report(figures: dict, kept: dict, args, base: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"self-training from a policy SFT'd on {args.demos} clean demonstrations ({base:.1f} % "
                        f"greedy), {args.rows} rows per round, greedy % on {args.retest} test problems, seeds "
                        f"{', '.join(map(str, args.seeds))}")
    for col in ("round", "traces", "kept (steps right)", "self-trained %", "control %", "gap per seed",
                "gap mean ± sd"):
        table.add_column(col, justify="right")
    for r in range(1, args.rounds + 1):
        control = figures[("control", r)]
        for kind in args.traces:
            mine = figures[(kind, r)]
            gaps = [a - b for a, b in zip(mine, control, strict=True)]
            sizes = kept[(kind, r)]
            table.add_row(str(r), kind, f"{statistics.fmean(n for n, _ in sizes):.0f} "
                                        f"({100 * statistics.fmean(s for _, s in sizes):.0f} %)",
                          _cell(mine), _cell(control), ", ".join(f"{g:+.1f}" for g in gaps), _cell(gaps, "+"))
    Console(width=160).print(table)


def _cell(values: list[float], sign: str = "") -> str:
    sd = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):{sign}.1f}{sd}"


if __name__ == "__main__":
    main()
