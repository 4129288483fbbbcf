"""One search tree as a self-contained HTML page (`treeflow view RUN PROBLEM`): every node with its step, the
value model's estimate, visits, mean backed-up value and the store's step targets (Math-Shepherd /
Monte Carlo and ReST-MCTS*), correct and wrong leaves, and the path the method chose. The page carries
its data as JSON and draws the tree as SVG with inline script (`flows/viewer.html`, the template); it needs
no network and no other file.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from storage import store


class NoSuchTree(LookupError):
    """No stored tree matches the run, problem and filters asked for."""


#: how several trees of one run and problem are ordered when the filters leave more than one: evaluation
#: trees of the last iteration first, MCTS-alpha before other methods, the largest budget, the lowest seed
_PREFERENCE = ("(stage = 'eval') DESC, iteration DESC, (method = 'mcts_alpha') DESC, method, "
               "budget DESC NULLS LAST, seed")


def find_tree(store_path: str | Path, run_id: str, problem_id: str, **filters) -> tuple[str, list[str]]:
    """The tree of `run_id` for `problem_id` that the filters (stage, iteration, method, budget, seed; None
    is no filter) pick, and every other tree that matched. Raises `NoSuchTree` naming what exists."""
    where, params = ["run_id = ?", "problem_id = ?"], [run_id, problem_id]
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    _, rows = store.query(store_path, f"SELECT tree_id FROM trees WHERE {' AND '.join(where)} "
                                      f"ORDER BY {_PREFERENCE}", params)
    if not rows:
        _, runs = store.query(store_path, "SELECT count(*) FILTER (WHERE problem_id = ?), count(*) FROM trees "
                                          "WHERE run_id = ?", [problem_id, run_id])
        for_problem, in_run = runs[0]
        if not in_run:
            raise NoSuchTree(f"{store_path}: no trees for run '{run_id}'")
        if not for_problem:
            raise NoSuchTree(f"{store_path}: run '{run_id}' has no tree for problem '{problem_id}'")
        asked = ", ".join(f"{k}={v}" for k, v in filters.items() if v is not None)
        raise NoSuchTree(f"{store_path}: run '{run_id}', problem '{problem_id}' has no tree with {asked}")
    return rows[0][0], [r[0] for r in rows[1:]]


def tree_data(store_path: str | Path, tree_id: str) -> dict:
    """The tree, its problem and its nodes (with their step targets) as the page shows them."""
    _, [tree] = store.query(store_path, "SELECT t.tree_id, t.run_id, t.iteration, t.stage, t.method, t.budget, "
                                        "t.seed, t.answer, t.correct, t.generated_tokens, t.chosen_path, "
                                        "t.policy, t.value_model, p.problem_id, p.question, p.gold "
                                        "FROM trees t JOIN problems p USING (problem_id) WHERE t.tree_id = ?",
                            [tree_id])
    keys = ("tree_id", "run_id", "iteration", "stage", "method", "budget", "seed", "answer", "correct",
            "generated_tokens", "chosen_path", "policy", "value_model", "problem_id", "question", "gold")
    info = dict(zip(keys, tree, strict=True))
    columns, rows = store.query(store_path, """
        SELECT n.node_id, n.parent_id, n.depth, n.step_text, n.prior, n.value, n.visits, n.value_sum, n.tokens,
               n.terminal, n.answer, n.correct, m.soft_label, m.leaves, r.quality_value
        FROM nodes n
        LEFT JOIN math_shepherd m USING (tree_id, node_id)
        LEFT JOIN rest_mcts_values r USING (tree_id, node_id)
        WHERE n.tree_id = ? ORDER BY n.node_id""", [tree_id])
    nodes = []
    for row in rows:
        node = dict(zip(columns, row, strict=True))
        soft = node.pop("soft_label")
        # the Monte Carlo target: the mean outcome (+1 correct, -1 wrong) of the finished paths below
        node["mc_target"] = None if soft is None else 2 * soft - 1
        node["math_shepherd"] = soft
        node["q"] = node["value_sum"] / node["visits"] if node["visits"] else None
        nodes.append(node)
    return {"tree": info, "nodes": nodes}


def render(data: dict) -> str:
    """The self-contained HTML page of `tree_data`'s result."""
    tree = data["tree"]
    title = f"{tree['method']} on {tree['problem_id']} ({tree['run_id']}, iteration {tree['iteration']})"
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    page = (Path(__file__).with_name("viewer.html")).read_text(encoding="utf-8")
    return page.replace("{{title}}", html.escape(title)).replace("{{data}}", payload)


def write_page(store_path: str | Path, run_id: str, problem_id: str, out: str | Path | None = None,
               **filters) -> tuple[Path, str, list[str]]:
    """Write the page of the tree `find_tree` picks; returns (page, tree id, the other matching trees)."""
    tree_id, others = find_tree(store_path, run_id, problem_id, **filters)
    path = Path(out or f"{tree_id.replace('/', '_')}.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(tree_data(store_path, tree_id)), encoding="utf-8")
    return path, tree_id, others
