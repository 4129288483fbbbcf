"""Does the first value model rank held-out steps better when a calculator cleans its targets?

    python benchmarks/value_checked_targets.py --workdir work/testbed-calc --seed 1 [--steps 150 600]

Reads a testbed run's store (`benchmarks/testbed.py --workdir DIR`, seed SEED: the run that trained the value
model from the bootstrap rollouts; a seed whose value model came from the cache has no rollouts in its store).
Retrains that first value model on the run's own training rows (the flow's Math-Shepherd hard targets, the
flow's held-out trees left out) twice per `--steps`: as the flow does, and with every target from the first
step that writes a false equation on (`problems.steps.equations_hold`) set to -1, the calculator's verdict
that the path has gone wrong. Prints the held-out AUC of each, measured as `benchmarks/testbed.py` measures
it (every prefix of iteration 0's Self-Consistency test trees, labelled by whether every step is right).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def checked(steps: list[str], targets: list[float]) -> list[float]:
    """`targets` with every one from the first step whose equations do not hold on set to -1."""
    from problems.steps import equations_hold

    out, holds = [], True
    for step, target in zip(steps, targets, strict=True):
        holds = holds and equations_hold(step)
        out.append(float(target) if holds else -1.0)
    return out


def checked_row(row: dict) -> dict:
    """A value-training row (`tasks.train.value_training_rows`) with its step targets `checked`."""
    prompt, *path = row["segments"]
    steps = [step for step, _ in path]
    return {"segments": [prompt, *map(list, zip(steps, checked(steps, [t for _, t in path]), strict=True))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "testbed.yaml"))
    parser.add_argument("--workdir", default="work/testbed-calc", help="benchmarks/testbed.py's --workdir")
    parser.add_argument("--cache", default="work/cache", help="benchmarks/testbed.py's --cache")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="value training steps (default: the config's value_training.max_steps)")
    parser.add_argument("--out", default=None, help="where the models go (default: <workdir>/value-checked)")
    args = parser.parse_args()

    from _common import run_config
    from testbed import _held_out_auc

    from flows import env

    env.configure(args.workdir)
    from models.tiny import cached
    from models.training import train_value
    from problems import select_problems
    from tasks.train import value_training_rows

    run_id = f"testbed-seed{args.seed}"
    config = run_config(args.config, [], {"workdir": f"{args.workdir}/seed-{args.seed}", "seed": args.seed,
                                          "cache_dir": args.cache, "run_id": run_id})
    store_path = str(config.paths["store"])
    if not Path(store_path).is_file():
        raise SystemExit(f"{store_path}: no trace store; run benchmarks/testbed.py --workdir {args.workdir} first")
    _, _, rows = value_training_rows(store_path, run_id, 0, config.value_targets, config.value_td_lambda,
                                     config.value_holdout)
    if not rows:
        raise SystemExit(f"{store_path}: run {run_id} has no bootstrap rollouts (its value model came from the "
                         "cache); pick the seed whose run trained it")
    cleaned = [checked_row(row) for row in rows]
    flipped = sum(a != b for row, clean in zip(rows, cleaned, strict=True)
                  for (_, a), (_, b) in zip(row["segments"][1:], clean["segments"][1:], strict=True))
    print(f"{len(rows)} training paths, {sum(len(r['segments']) - 1 for r in rows)} step targets, "
          f"{flipped} set to -1 by the calculator")

    if (policy := cached(config.tiny, config.paths["cache"])) is None:
        raise SystemExit(f"no bootstrap policy for {args.config} in {config.paths['cache']}")
    problems = {p.id: p for p in select_problems(config.task.name, "test", 0, config.task.test_size,
                                                 config.task.options)}
    out = Path(args.out or f"{args.workdir}/value-checked")
    for steps in args.steps or [config.value_training.max_steps]:
        settings = dataclasses.replace(config.value_training, max_steps=steps)
        for name, data in (("as the flow", rows), ("calculator-checked", cleaned)):
            t0 = time.perf_counter()
            model = out / f"s{args.seed}-{steps}-{'checked' if name != 'as the flow' else 'flow'}"
            train_value(str(policy), data, model, settings)
            auc = _held_out_auc(store_path, run_id, problems, str(model))
            print(f"{steps} steps, targets {name}: held-out AUC {auc:.3f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
