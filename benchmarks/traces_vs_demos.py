"""Are the flywheel's searched traces worth more to SFT than the demonstrations, row for row?

    python benchmarks/traces_vs_demos.py [--workdir work/testbed] [--seeds 0 1 2] [--mix 2000 200 0] \
        [--epochs 1 3] [--retest 2000]

Reads the runs `benchmarks/testbed.py` left in `--workdir` (seed-S/, run testbed-seedS). For each seed, each
number of mixed-in demonstrations M and each number of SFT epochs E, it fine-tunes the bootstrap policy twice,
as the flow's first iteration does: on iteration 1's distinct correct traces (D+, the same query the flow's SFT
reads) plus M demonstrations drawn as the flow draws them, and, as the testbed's control, on as many
demonstrations alone, drawn as the control draws them. Both are decoded greedily, as the flows evaluate greedy,
on the first `--retest` test problems. At the testbed's own setting (M = `mix_demos`, E = `sft.epochs`) the two
are the testbed's iteration-1 policy and control. Prints per setting each arm's accuracy and the per-seed gap
(mean and sd over seeds): with M = 2,000 the traces are 8 % of the rows the flywheel trains on, so a gain of
theirs would barely show; fewer demonstrations make them count for more.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--workdir", default="work/testbed", help="benchmarks/testbed.py's --workdir")
    parser.add_argument("--cache", default="work/cache", help="the bootstrap cache testbed.py used")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mix", type=int, nargs="+", default=[2000, 200, 0], help="demonstrations mixed in")
    parser.add_argument("--epochs", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--retest", type=int, default=2000, help="test problems each policy is decoded on")
    args = parser.parse_args()
    if args.retest < 1 or min(args.mix) < 0 or min(args.epochs) <= 0:
        raise SystemExit("--retest must be >= 1, --mix >= 0 and --epochs > 0")

    from flows import env

    env.configure(args.workdir)
    from rich.console import Console
    from rich.table import Table

    from flows.config import load_config

    results: dict[tuple[int, float], list[tuple[float, float]]] = {}
    for seed in args.seeds:
        config = load_config(args.config, {"workdir": f"{args.workdir}/seed-{seed}", "cache_dir": args.cache,
                                           "seed": seed, "run_id": f"testbed-seed{seed}"})
        for mix in args.mix:
            for epochs in args.epochs:
                both, alone = (accuracy(config, path, args.retest) for path in train_arms(config, mix, epochs))
                results.setdefault((mix, epochs), []).append((both, alone))
                print(f"seed {seed}, {mix} demos, {epochs:g} epochs: D+ and demos {100 * both:.1f} %, demos only "
                      f"{100 * alone:.1f} %", flush=True)
    table = Table(title=f"one SFT from the bootstrap: iteration 1's D+ and M demonstrations vs as many "
                        f"demonstrations alone, greedy on {args.retest} test problems, seeds "
                        f"{', '.join(map(str, args.seeds))}")
    for col in ("M demos", "epochs", "D+ and demos %", "demos only %", "gap per seed (points)", "gap mean ± sd"):
        table.add_column(col, justify="right")
    for (mix, epochs), pairs in results.items():
        gaps = [100 * (a - b) for a, b in pairs]
        table.add_row(str(mix), f"{epochs:g}", _cell([100 * a for a, _ in pairs]),
                      _cell([100 * b for _, b in pairs]), ", ".join(f"{g:+.1f}" for g in gaps),
                      _cell(gaps, sign="+"))
    Console(width=160).print(table)


def train_arms(config, mix: int, epochs: float) -> tuple[str, str]:
    """The bootstrap fine-tuned on `arm_rows`' two arms, for `epochs` SFT epochs with the config's other SFT
    settings. Returns both model directories (reused when already trained)."""
    from models.training import train_policy
    from storage import store
    from tasks.train import d_plus_query

    store_path = str(config.paths["store"])
    where, params = d_plus_query(config.run_id, 1, **config.sft_filter.model_dump())  # what the flow's SFT reads
    _, rows = store.query(store_path, f"SELECT DISTINCT prompt, completion {where} ORDER BY prompt, completion",
                          params)
    if not rows:
        raise SystemExit(f"{store_path}: no iteration-1 traces of run {config.run_id} (run benchmarks/testbed.py)")
    _, policy = store.query(store_path, "SELECT any_value(policy) FROM evaluations WHERE run_id = ? AND "
                                        "iteration = 0 AND method = 'greedy'", [config.run_id])
    settings = dataclasses.replace(config.sft, epochs=epochs)
    paths = []
    for arm, data in arm_rows(config, [{"prompt": p, "completion": c} for p, c in rows], mix).items():
        path = config.paths["root"] / "traces-vs-demos" / f"{arm}-m{mix}-e{epochs:g}"
        if not (path / "config.json").is_file():
            train_policy(policy[0][0], data, path, settings)
        paths.append(str(path))
    return paths[0], paths[1]


def arm_rows(config, traces: list[dict], mix: int) -> dict[str, list[dict]]:
    """Iteration 1's SFT rows with `mix` demonstrations: the flywheel's (its traces and the demonstrations the flow
    mixes in) and the control's (as many demonstrations alone, drawn as benchmarks/testbed.py's control draws
    them). With `mix` = `config.mix_demos` they are the rows of the testbed's iteration-1 policy and control."""
    from testbed import control_rows

    from models.tiny import demonstrations
    from tasks.train import mixed_demos

    return {"traces": traces + mixed_demos(config.tiny, config.sft, 1, mix),
            "demos": control_rows(config, demonstrations(config.tiny), 1, len(traces) + mix)}


def accuracy(config, policy: str, count: int) -> float:
    from _common import greedy_answers

    shard = str(config.paths["root"] / "retest" / f"traces-vs-demos-{Path(policy).name}")
    return statistics.fmean(greedy_answers(config, policy, count, shard).values())


def _cell(values: list[float], sign: str = "") -> str:
    sd = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):{sign}.1f}{sd}"


if __name__ == "__main__":
    main()
