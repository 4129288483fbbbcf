"""Search results -> trace-store rows: trees labelled with correctness against the gold answer.

Labelling happens here, after search, so no search method ever sees the gold answer.
"""

from __future__ import annotations

from problems.base import Problem
from search.tree import SearchResult


def result_rows(result: SearchResult, problem: Problem, *, tree_id: str, run_id: str, iteration: int,
                stage: str, split: str, method: str, policy: str | None, value_model: str | None,
                budget: int | None = None, seed: int = 0) -> tuple[dict, list[dict]]:
    """(tree row, node rows) for one searched problem."""
    tree = result.tree
    nodes = []
    for row in tree.rows():
        row["tree_id"] = tree_id
        row["correct"] = problem.check(row["answer"]) if row["terminal"] else None
        nodes.append(row)
    tree_row = {
        "tree_id": tree_id, "run_id": run_id, "iteration": iteration, "stage": stage, "split": split,
        "method": method, "problem_id": problem.id, "policy": policy, "value_model": value_model,
        "answer": result.answer, "correct": problem.check(result.answer),
        "generated_tokens": tree.generated_tokens, "value_states": tree.value_states,
        "chosen_path": result.chosen, "budget": budget, "seed": seed, "checker": problem.checker_name,
    }
    return tree_row, nodes


def problem_row(problem: Problem) -> dict:
    """A `problems` row."""
    return {"problem_id": problem.id, "task": problem.task, "question": problem.question,
            "gold": problem.answer, "prompt": problem.prompt}
