"""Which verifier can tell the testbed policy's right next step from its wrong one? Each kind trained for a
few CPU-minutes, measured by AUC between siblings (the choice a search makes) on held-out problems.

    python benchmarks/step_verifier.py [--config configs/testbed.yaml] [--workdir work/report-full] \
        [--train 4000] [--test 300] [--k 4] [--verifiers policy head pairs own-rollouts filtered-demos] \
        [--head-steps 600] [--head-backbones policy 8x256 8x256-scratch] [--device cpu]

Sibling sets: at every gold prefix of a problem (depth 0 to the last step), k next steps sampled from the
testbed policy at its temperature, each labelled by whether it is the gold step
(`problems.arithmetic.on_track`). With `--config configs/countdown.yaml` the policy is the Countdown one,
the gold solution the play that made each puzzle, and a step is right when the numbers left can still make
the target (`problems.countdown.on_track`); the table then also splits the sibling AUC by the wrong step's
fault (miscomputed, dead end, ...): planning (dead ends) against arithmetic. On test problems that label is
the measurement; on train problems it is also the training label of `head` and `pairs`: exact process
supervision, the best labels a value model could be given (the flow's are inferred from rollouts and
noisier). Verifiers:

- `policy`: the policy's own confidence in the step (its weakest step's geometric-mean token probability);
  no training.
- `head`: treeflow's value model (policy backbone + scalar head read at the step's last token), cross-entropy
  on the labels, 600 steps (`--head-steps`). `--head-backbones` trains one head per backbone: `policy` (the
  default), `LAYERSxWIDTH` (a GPT-2 of that shape bootstrapped on the policy's own demonstrations with the
  policy's recipe, to the end of its schedule: a bigger value model than the policy) or `LAYERSxWIDTH-scratch`
  (that shape untrained: capacity without the language-model pretraining).
- `pairs`: the same network trained only to rank each (right, wrong) pair of siblings (Bradley-Terry, TRL
  RewardTrainer), 300 steps: whatever is shared by siblings, such as how hard the problem is, cancels out.
- `own-rollouts`: a copy of the policy fine-tuned (SFT, 300 steps) on its own distinct correct rollouts of
  2,000 train problems x 8, scored by its confidence: a generative verifier from outcome-checked samples.
- `filtered-demos`: a copy of the policy fine-tuned (SFT, 300 steps) on the bootstrap's own noisy
  demonstrations kept only where the final answer checks, scored by its confidence.

For each it prints the AUC over all held-out states and between siblings, and for the trained value heads
the same on their own training problems (what they learned, against what generalises).
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERIFIERS = ["policy", "head", "pairs", "own-rollouts", "filtered-demos"]


def solved(config, split: str, n: int) -> list[tuple]:
    """`n` problems of the tiny policy's task, each with a gold solution (Countdown: the play that made it)."""
    from problems import arithmetic, countdown

    if config.tiny.countdown is not None:
        return countdown.solved(n, split=split, config=config.tiny.countdown)
    problems = arithmetic.generate(n, split=split, config=config.tiny.task)
    return [(p, arithmetic.solution_steps(p)) for p in problems]


def sibling_sets(policy, solved: list[tuple], k: int) -> list[tuple[str, str, bool]]:
    """(parent state, next step, label) for k sampled next steps at every prefix of each (problem, gold
    solution); the label is the task's `on_track` (arithmetic: is it the gold step; Countdown: can the
    numbers left still make the target)."""
    from problems import TASKS

    owners = [(p, gold[:d]) for p, gold in solved for d in range(len(gold))]
    prefixes = [p.prompt + "".join(gold) for p, gold in owners]
    out = []
    for (p, gold), prefix, group in zip(owners, prefixes, policy.propose_steps(prefixes, k), strict=True):
        out += [(prefix, c.text, TASKS[p.task].on_track(p, [*gold, c.text])) for c in group]
    return out


def aucs(scorer, sets: list[tuple[str, str, bool]], kinds: list[str | None] | None = None):
    """AUC over every state, and between siblings only; with `kinds` (each wrong step's fault, None for
    the right ones), also between siblings per fault: each kind's wrong steps against their right siblings."""
    from models.metrics import roc_auc, sibling_auc

    scores = scorer.score([parent + step for parent, step, _ in sets])
    labels = [label for *_, label in sets]
    out = (roc_auc(scores, labels), sibling_auc(scores, labels, [parent for parent, *_ in sets]))
    if kinds is None:
        return out
    per_kind = {}
    for kind in sorted({k for k in kinds if k is not None}):
        keep = [i for i, k in enumerate(kinds) if k in (None, kind)]
        per_kind[kind] = sibling_auc([scores[i] for i in keep], [labels[i] for i in keep],
                                     [sets[i][0] for i in keep])
    return (*out, per_kind)


def faults(sets: list[tuple[str, str, bool]], solved: list[tuple]) -> list[str | None] | None:
    """Each step's fault (`problems.countdown.fault`; None when right), for Countdown; None for other tasks."""
    from problems import countdown

    if not solved or solved[0][0].task != "countdown":
        return None
    by_prompt = {p.prompt: p for p, _ in solved}
    out = []
    for parent, step, _ in sets:
        prompt = parent[:parent.index("\n") + 1]
        out.append(countdown.fault(by_prompt[prompt], [*parent[len(prompt):].splitlines(keepends=True), step]))
    return out


def outcome_filtered(rows: list[dict], problems: list) -> list[dict]:
    """The `{"prompt", "completion"}` rows whose last step's answer checks against their problem."""
    from problems.steps import final_answer

    by_prompt = {p.prompt: p for p in problems}
    return [r for r in rows if by_prompt[r["prompt"]].check(final_answer(r["completion"].splitlines()[-1]) or "")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--workdir", default="work/report-full", help="its cache/ holds (or gets) the policy")
    parser.add_argument("--train", type=int, default=4000, help="train problems for the sibling-set labels")
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--verifiers", nargs="+", choices=VERIFIERS, default=VERIFIERS)
    parser.add_argument("--head-steps", type=int, default=600, help="training steps of the `head` verifier")
    parser.add_argument("--head-backbones", nargs="+", default=["policy"], type=_backbone,
                        help="what each `head` starts from: policy, LAYERSxWIDTH (an LM of that shape on the "
                             "policy's demonstrations) or LAYERSxWIDTH-scratch (untrained)")
    parser.add_argument("--out", default="work/step-verifier", help="where the trained verifiers are saved")
    parser.add_argument("--device", default="cpu", help="where the policy samples and the value heads score")
    args = parser.parse_args()

    from flows import env

    env.configure(args.workdir)
    import torch
    from rich.console import Console
    from rich.table import Table
    from verifier_ceiling import LogProbScorer

    from flows.config import load_config
    from models.hf_policy import TransformersPolicy
    from models.tiny import bootstrap, demonstrations
    from models.training import RewardSettings, SFTSettings, ValueSettings, train_orm, train_policy, train_value
    from models.value import TransformersValue
    from problems.steps import final_answer
    from search.sampling import sample_paths

    t_start = time.perf_counter()
    config = load_config(args.config, {"workdir": args.workdir})
    policy_dir = str(bootstrap(config.tiny, config.paths["cache"]))
    torch.manual_seed(0)
    policy = TransformersPolicy.from_pretrained(policy_dir, temperature=config.policy.temperature,
                                                device=args.device)
    console = Console(width=130)
    train_solved = solved(config, "train", args.train)
    train_problems = [p for p, _ in train_solved]
    test_solved = solved(config, "test", args.test)
    test_sets = sibling_sets(policy, test_solved, args.k)
    kinds = faults(test_sets, test_solved)
    needs_train_sets = {"head", "pairs"} & set(args.verifiers)
    train_sets = sibling_sets(policy, train_solved, args.k) if needs_train_sets else []
    console.print(f"sibling sets: {len(test_sets)} held-out states ({sum(x[2] for x in test_sets)} right), "
                  f"{len(train_sets)} training states ({time.perf_counter() - t_start:.0f} s)")
    if kinds is not None:
        console.print("held-out wrong steps by fault: " + ", ".join(
            f"{k} {kinds.count(k)}" for k in sorted({k for k in kinds if k is not None})))
    out = Path(args.out)
    sft = SFTSettings(max_steps=300, learning_rate=1e-3, batch_size=64)
    rows: list[tuple[str, str, tuple, tuple | None]] = []
    for name in args.verifiers:
        t0 = time.perf_counter()
        note, own = "", None
        if name == "policy":
            scorer = LogProbScorer(policy_dir)
        elif name == "head":
            data = [{"text": parent + step, "target": 1.0 if ok else -1.0} for parent, step, ok in train_sets]
            random.Random(0).shuffle(data)
            for backbone in args.head_backbones:
                t0, label = time.perf_counter(), name if backbone == "policy" else f"head on {backbone}"
                init = head_backbone(backbone, config.tiny, policy_dir, config.paths["cache"], out)
                train_value(init, data, out / label.replace(" ", "-"),
                            ValueSettings(max_steps=args.head_steps, batch_size=64, loss="bce"))
                scorer = TransformersValue(str(out / label.replace(" ", "-")), device=args.device)
                note = f"{len(data)} labelled steps, {args.head_steps} steps"
                if backbone != "policy":
                    note += f", {_params(init) / 1e6:.1f}M parameters"
                own = aucs(scorer, train_sets[:len(test_sets)])
                rows.append((label, note, aucs(scorer, test_sets, kinds), own))
                console.print(_done(label, t0, rows[-1]))
            continue
        elif name == "pairs":
            by_parent: dict[str, tuple[list, list]] = {}
            for parent, step, ok in train_sets:
                by_parent.setdefault(parent, ([], []))[0 if ok else 1].append(parent + step)
            pairs = [{"chosen": a, "rejected": b}
                     for good, bad in by_parent.values() for a, b in zip(good, bad, strict=False)]
            random.Random(0).shuffle(pairs)
            train_orm(policy_dir, pairs, out / name, RewardSettings(max_steps=300, batch_size=64))
            scorer, note = TransformersValue(str(out / name), device=args.device), f"{len(pairs)} sibling pairs"
            own = aucs(scorer, train_sets[:len(test_sets)])
        elif name == "own-rollouts":
            sample = train_problems[:2000]
            paths = sample_paths([p.prompt for p in sample], propose=policy.propose_steps, n=8,
                                 temperature=config.policy.temperature, max_depth=6)
            traces = sorted({(p.prompt, "".join(c.text for c in path))
                             for p, group in zip(sample, paths, strict=True)
                             for path in group if p.check(final_answer(path[-1].text) or "")})
            data = [{"prompt": a, "completion": b} for a, b in traces]
            train_policy(policy_dir, data, out / name, sft)
            scorer, note = LogProbScorer(str(out / name)), f"{len(data)} distinct correct rollouts"
        else:  # filtered-demos
            demos = demonstrations(config.tiny)
            kept = outcome_filtered(demos, [p for p, _ in solved(config, "demo", config.tiny.n_demos)])
            data = kept[:sft.max_steps * sft.batch_size]
            train_policy(policy_dir, data, out / name, sft)
            scorer, note = LogProbScorer(str(out / name)), (f"{len(data)} of {len(kept)} demonstrations whose "
                                                            f"answer checks (of {len(demos)})")
        rows.append((name, note, aucs(scorer, test_sets, kinds), own))
        console.print(_done(name, t0, rows[-1]))
    table = Table(title=f"{config.task.name}: telling the policy's right next step from its wrong one "
                        f"({args.test} held-out problems, k = {args.k})")
    fault_kinds = sorted({k for k in kinds or [] if k is not None})
    for col in ("verifier", "trained on", "AUC, all", "AUC, siblings",
                *(f"siblings: right vs {k}" for k in fault_kinds), "on its training problems: all / siblings"):
        table.add_column(col, justify="left" if col in ("verifier", "trained on") else "right")
    for name, note, (auc, sib, *by_fault), own in rows:
        per_fault = [_fmt(by_fault[0].get(k)) for k in fault_kinds] if by_fault else []
        table.add_row(name, note, _fmt(auc), _fmt(sib), *per_fault,
                      "" if own is None else f"{_fmt(own[0])} / {_fmt(own[1])}")
    console.print(table)
    console.print(f"wall time {(time.perf_counter() - t_start) / 60:.1f} min")


def _done(name: str, t0: float, row: tuple) -> str:
    """One verifier's line as soon as it is measured (a long run's table comes only at the end)."""
    _, note, (auc, sib, *_), own = row
    mine = "" if own is None else f"; on its training problems {_fmt(own[0])} / {_fmt(own[1])}"
    return f"{name} ({note}): AUC {_fmt(auc)}, siblings {_fmt(sib)}{mine}; {time.perf_counter() - t0:.0f} s"


def _backbone(text: str) -> str:
    if text != "policy" and not re.fullmatch(r"\d+x\d+(-scratch)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected policy, LAYERSxWIDTH or LAYERSxWIDTH-scratch")
    return text


def head_backbone(backbone: str, recipe, policy_dir: str, cache: Path, out: Path) -> str:
    """The model directory a `head` verifier starts from (see the module docstring)."""
    import dataclasses

    from models.tiny import bootstrap, untrained

    if backbone == "policy":
        return policy_dir
    shape, _, scratch = backbone.partition("-")
    layers, width = (int(x) for x in shape.split("x"))
    bigger = dataclasses.replace(recipe, n_layer=layers, n_embd=width, n_head=max(1, width // 32), stop_step=None)
    return str(untrained(bigger, out / f"backbone-{backbone}") if scratch else bootstrap(bigger, cache))


def _params(path: str) -> int:
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
