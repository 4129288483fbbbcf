"""Reward-inference views against an independent Python computation on random trees (hypothesis)."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import store


@st.composite
def forests(draw):
    """A few random trees: (parents, terminal, correct) per tree; single-node trees and all-wrong ones too."""
    trees = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 25))
        rng = random.Random(draw(st.integers(0, 10**6)))
        parents = [-1] + [rng.randrange(i) for i in range(1, n)]
        has_child = {p for p in parents if p >= 0}
        terminal = [i not in has_child and (i > 0 or n == 1) and rng.random() < 0.9 for i in range(n)]
        p_correct = draw(st.sampled_from([0.0, 0.3, 1.0]))
        correct = [t and rng.random() < p_correct for t in terminal]
        trees.append((parents, terminal, correct))
    return trees


def _expected(parents, terminal, correct):
    """Per node: the correctness of every terminal leaf at or below it."""
    below = defaultdict(list)
    for leaf, is_terminal in enumerate(terminal):
        if not is_terminal:
            continue
        node = leaf
        while node != -1:
            below[node].append(correct[leaf])
            node = parents[node]
    return below


def _load_forest(con, trees, step_text=lambda i: "") -> None:
    """Replace the nodes table with `trees` (tree t is "t{t}"; node i's step text is `step_text(i)`)."""
    con.execute("DELETE FROM nodes")
    rows = []
    for t, (parents, terminal, correct) in enumerate(trees):
        depth = [0] * len(parents)
        for i in range(1, len(parents)):
            depth[i] = depth[parents[i]] + 1
        rows += [(f"t{t}", i, parents[i], depth[i], step_text(i), 0, 0.0, 0, terminal[i],
                  correct[i] if terminal[i] else None) for i in range(len(parents))]
    con.executemany("INSERT INTO nodes (tree_id, node_id, parent_id, depth, step_text, visits, value_sum, tokens, "
                    "terminal, correct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    c = store.connect(tmp_path_factory.mktemp("views") / "s.duckdb")
    yield c
    c.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forests())
def test_mc_targets_and_math_shepherd_match_python(con, trees):
    _load_forest(con, trees)
    labels = con.execute("SELECT tree_id, node_id, soft_label, hard_label, leaves FROM math_shepherd").fetchall()
    shepherd = {(t, n): (soft, hard, leaves) for t, n, soft, hard, leaves in labels}
    mc = defaultdict(list)
    for t, n, target in con.execute("SELECT tree_id, node_id, target FROM mc_targets").fetchall():
        mc[(t, n)].append(target)

    expected_shepherd, expected_mc = {}, {}
    for t, tree in enumerate(trees):
        for node, outcomes in _expected(*tree).items():
            expected_shepherd[(f"t{t}", node)] = (sum(outcomes) / len(outcomes), any(outcomes), len(outcomes))
            if node != 0:
                expected_mc[(f"t{t}", node)] = sorted(1.0 if c else -1.0 for c in outcomes)
    assert shepherd.keys() == expected_shepherd.keys()
    for key, (soft, hard, leaves) in expected_shepherd.items():
        assert shepherd[key][0] == pytest.approx(soft) and shepherd[key][1:] == (hard, leaves)
    assert {k: sorted(v) for k, v in mc.items()} == expected_mc


def _rest_mcts(parents, terminal, correct):
    """ReST-MCTS* v_k, written from the paper's definition (an independent implementation)."""
    n = len(parents)
    depth = [0] * n
    for i in range(1, n):
        depth[i] = depth[parents[i]] + 1
    own = {}
    for leaf in range(n):
        if terminal[leaf] and correct[leaf]:
            node = leaf
            while node != -1:
                own[node] = min(own.get(node, 10**9), depth[leaf] - depth[node])
                node = parents[node]
    if 0 not in own:
        return {}
    values = {0: (own[0], 0.0)}
    for node in range(1, n):  # parents precede children in these trees
        m_parent, v_parent = values[parents[node]]
        m, r = (own[node], 0) if node in own else (m_parent, 1)
        values[node] = (m, max(v_parent + (1 - v_parent) / (m + 1) * (1 - 2 * r), 0.0))
    return values


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forests())
def test_rest_mcts_values_match_python(con, trees):
    con.execute("DELETE FROM nodes")
    for t, (parents, terminal, correct) in enumerate(trees):
        depth = [0] * len(parents)
        for i in range(1, len(parents)):
            depth[i] = depth[parents[i]] + 1
        con.executemany("INSERT INTO nodes (tree_id, node_id, parent_id, depth, step_text, visits, value_sum, "
                        "tokens, terminal, correct) VALUES (?, ?, ?, ?, '', 0, 0, 0, ?, ?)",
                        [(f"t{t}", i, parents[i], depth[i], terminal[i], correct[i] if terminal[i] else None)
                         for i in range(len(parents))])
    got = {(t, n): (m, v) for t, n, m, v in con.execute(
        "SELECT tree_id, node_id, reasoning_distance, quality_value FROM rest_mcts_values").fetchall()}
    expected = {(f"t{t}", node): mv for t, tree in enumerate(trees) for node, mv in _rest_mcts(*tree).items()}
    assert got.keys() == expected.keys()
    for key, (m, v) in expected.items():
        assert got[key][0] == m and got[key][1] == pytest.approx(v)


@pytest.mark.parametrize("k_steps", [1, 2, 3, 7])
def test_rest_mcts_correct_path_gets_k_over_K(con, k_steps):
    con.execute("DELETE FROM nodes")
    con.executemany("INSERT INTO nodes (tree_id, node_id, parent_id, depth, step_text, visits, value_sum, tokens, "
                    "terminal, correct) VALUES ('p', ?, ?, ?, '', 0, 0, 0, ?, ?)",
                    [(i, i - 1, i, i == k_steps, True if i == k_steps else None) for i in range(k_steps + 1)])
    values = dict(con.execute("SELECT node_id, quality_value FROM rest_mcts_values").fetchall())
    assert [values[k] for k in range(k_steps + 1)] == pytest.approx([k / k_steps for k in range(k_steps + 1)])


def _td_lambda(parents, terminal, correct, values, lam):
    """Per (node, leaf): the TD(lambda) target from the definition, via advantages along the path."""
    out = defaultdict(list)
    for leaf in range(1, len(parents)):
        if not terminal[leaf]:
            continue
        path = [leaf]
        while parents[path[-1]] > 0:
            path.append(parents[path[-1]])
        path.reverse()  # s_1 .. s_T (the root prompt is not a step)
        reward = 1.0 if correct[leaf] else -1.0
        advantage = reward - values[path[-1]]  # delta_T: the final reward, no state after the terminal
        out[path[-1]].append(advantage + values[path[-1]])
        for t in range(len(path) - 2, -1, -1):
            delta = values[path[t + 1]] - values[path[t]]
            advantage = delta + lam * advantage
            out[path[t]].append(advantage + values[path[t]])
    return out


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trees=forests(), seed=st.integers(0, 1000))
def test_td_lambda_matches_python(con, lam, trees, seed):
    rng = random.Random(seed)
    con.execute("DELETE FROM nodes")
    expected = {}
    for t, (parents, terminal, correct) in enumerate(trees):
        values = [round(rng.uniform(-1, 1), 3) for _ in parents]
        depth = [0] * len(parents)
        for i in range(1, len(parents)):
            depth[i] = depth[parents[i]] + 1
        con.executemany("INSERT INTO nodes (tree_id, node_id, parent_id, depth, step_text, value, visits, "
                        "value_sum, tokens, terminal, correct) VALUES (?, ?, ?, ?, '', ?, 0, 0, 0, ?, ?)",
                        [(f"t{t}", i, parents[i], depth[i], values[i], terminal[i],
                          correct[i] if terminal[i] else None) for i in range(len(parents))])
        for node, targets in _td_lambda(parents, terminal, correct, values, lam).items():
            expected[(f"t{t}", node)] = sorted(targets)
    got = defaultdict(list)
    for t, n, target in con.execute("SELECT tree_id, node_id, target FROM td_lambda_targets(?)", [lam]).fetchall():
        got[(t, n)].append(target)
    assert got.keys() == expected.keys()
    for key, targets in expected.items():
        assert sorted(got[key]) == pytest.approx(targets)
    if lam == 1.0:  # lambda = 1 is Monte Carlo
        mc = sorted(con.execute("SELECT tree_id, node_id, leaf_id, target FROM mc_targets").fetchall())
        td = sorted(con.execute("SELECT tree_id, node_id, leaf_id, target FROM td_lambda_targets(1.0)").fetchall())
        assert [r[:3] for r in td] == [r[:3] for r in mc]
        assert [r[3] for r in td] == pytest.approx([r[3] for r in mc])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forests())
def test_preference_pairs_match_python(con, trees):
    con.execute("DELETE FROM nodes")
    expected = set()
    for t, (parents, terminal, correct) in enumerate(trees):
        con.executemany("INSERT INTO nodes (tree_id, node_id, parent_id, depth, step_text, visits, value_sum, "
                        "tokens, terminal, correct) VALUES (?, ?, ?, 0, '', 0, 0, 0, ?, ?)",
                        [(f"t{t}", i, parents[i], terminal[i], correct[i] if terminal[i] else None)
                         for i in range(len(parents))])
        below = _expected(parents, terminal, correct)
        for a in below:
            for b in below:
                if a != b and a > 0 and parents[a] == parents[b] and any(below[a]) and not any(below[b]):
                    expected.add((f"t{t}", parents[a], a, b))
    got = set(con.execute("SELECT tree_id, parent_id, chosen_id, rejected_id FROM preference_pairs").fetchall())
    assert got == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forests())
def test_value_paths_match_python(con, trees):
    """One row per terminal leaf: its root path's steps in order, each with 2 * soft label - 1 and +-1 hard."""
    _load_forest(con, trees, step_text=lambda i: f"s{i}\n")
    paths = con.execute("SELECT tree_id, leaf_id, steps, targets, hard_targets FROM value_paths").fetchall()
    got = {(t, leaf): (steps, targets, hard) for t, leaf, steps, targets, hard in paths}
    expected = {}
    for t, (parents, terminal, correct) in enumerate(trees):
        below = _expected(parents, terminal, correct)
        for leaf, is_terminal in enumerate(terminal):
            path, node = [], leaf
            while node > 0:
                path.insert(0, node)
                node = parents[node]
            if is_terminal and path:
                expected[(f"t{t}", leaf)] = ([f"s{n}\n" for n in path],
                                             [2 * sum(below[n]) / len(below[n]) - 1 for n in path],
                                             [1.0 if any(below[n]) else -1.0 for n in path])
    assert got.keys() == expected.keys()
    for key, (steps, targets, hard) in expected.items():
        assert got[key][0] == steps and got[key][1] == pytest.approx(targets) and got[key][2] == hard


def _load_with_trees(con, trees, values):
    """Nodes as `_load_forest` (step text "s{i}\\n", answer "a" on terminals, the given values), plus a
    trees row and a problem (prompt "P{t}\\n") per tree, for the views that join them."""
    _load_forest(con, trees, step_text=lambda i: f"s{i}\n" if i else "")
    con.execute("UPDATE nodes SET answer = CASE WHEN terminal THEN 'a' END")
    for t, vs in enumerate(values):
        con.executemany("UPDATE nodes SET value = ?, logprob = ? WHERE tree_id = ? AND node_id = ?",
                        [(v, _logprob(i), f"t{t}", i) for i, v in enumerate(vs)])
    con.execute("DELETE FROM trees")
    con.execute("DELETE FROM problems")
    for t in range(len(trees)):
        con.execute("INSERT INTO trees (tree_id, run_id, iteration, stage, split, method, problem_id, correct, "
                    "generated_tokens, value_states) VALUES (?, 'r', 1, 'search', 'train', 'm', ?, false, 0, 0)",
                    [f"t{t}", f"p{t}"])
        con.execute("INSERT INTO problems VALUES (?, 'x', 'q', 'g', ?)", [f"p{t}", f"P{t}\n"])


def _logprob(node: int) -> float:
    """A step's mean token log-prob in `_load_with_trees`: fixed per node, in no order with its value."""
    return -((node * 7919) % 13) / 10


def _path(parents, node):
    out = []
    while node > 0:
        out.insert(0, node)
        node = parents[node]
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forests(), st.randoms(use_true_random=False))
def test_training_set_views_match_python(con, trees, rnd):
    values = [[round(rnd.uniform(-1, 1), 3) for _ in parents] for parents, _, _ in trees]
    _load_with_trees(con, trees, values)
    got = {(t, n, m): (prefix, step, target) for t, n, prefix, step, m, target in con.execute(
        "SELECT tree_id, node_id, prefix, step, method, target FROM prm_targets").fetchall()}
    expected = {}
    for t, (parents, terminal, correct) in enumerate(trees):
        rest = _rest_mcts(parents, terminal, correct)
        for node, outcomes in _expected(parents, terminal, correct).items():
            if node == 0:
                continue
            prefix = f"P{t}\n" + "".join(f"s{n}\n" for n in _path(parents, parents[node]))
            soft = sum(outcomes) / len(outcomes)
            for method, target in (("monte_carlo", 2 * soft - 1), ("math_shepherd_soft", soft),
                                   ("math_shepherd_hard", float(any(outcomes)))):
                expected[(f"t{t}", node, method)] = (prefix, f"s{node}\n", target)
        for node, (_, v) in rest.items():  # every step of a tree with a correct leaf, unfinished ones too
            if node:
                prefix = f"P{t}\n" + "".join(f"s{n}\n" for n in _path(parents, parents[node]))
                expected[(f"t{t}", node, "rest_mcts")] = (prefix, f"s{node}\n", v)
    assert sorted(got.keys() - expected.keys()) == [] and sorted(expected.keys() - got.keys()) == []
    for key, (prefix, step, target) in expected.items():
        assert got[key][:2] == (prefix, step) and got[key][2] == pytest.approx(target)

    orm = {(t, leaf): (prompt, completion, label) for t, leaf, prompt, completion, label in con.execute(
        "SELECT tree_id, leaf_id, prompt, completion, label FROM orm_rows").fetchall()}
    sft_sql = "SELECT tree_id, leaf_id, completion, min_value, min_logprob, steps FROM sft_traces"
    sft = {(t, leaf): row for t, leaf, *row in con.execute(sft_sql).fetchall()}
    expected_orm, expected_sft = {}, {}
    for t, (parents, terminal, correct) in enumerate(trees):
        for leaf in range(len(parents)):
            if not terminal[leaf]:
                continue
            path = _path(parents, leaf)
            completion = "".join(f"s{n}\n" for n in path)
            expected_orm[(f"t{t}", leaf)] = (f"P{t}\n", completion, correct[leaf])
            if correct[leaf]:
                expected_sft[(f"t{t}", leaf)] = (completion, min((values[t][n] for n in path), default=None),
                                                 min((_logprob(n) for n in path), default=None), len(path))
    assert orm == expected_orm
    assert sft.keys() == expected_sft.keys()
    for key, (completion, low, least_sure, steps) in expected_sft.items():
        assert sft[key][0] == completion and sft[key][3] == steps
        assert (sft[key][1] is None and low is None) or sft[key][1] == pytest.approx(low)
        assert (sft[key][2] is None and least_sure is None) or sft[key][2] == pytest.approx(least_sure)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forests(), st.randoms(use_true_random=False), st.sampled_from(["monte_carlo", "math_shepherd_soft",
                                                                       "math_shepherd_hard", "td_lambda",
                                                                       "rest_mcts"]))
def test_value_training_paths_carry_each_methods_step_targets(con, trees, rnd, method):
    """Every method's value paths (storage.datasets.value_paths_query) hold, step by step along each
    root-to-terminal path, the per-node targets the reward views compute, on [-1, 1]."""
    from storage.datasets import value_paths_query

    values = [[round(rnd.uniform(-1, 1), 3) for _ in parents] for parents, _, _ in trees]
    _load_with_trees(con, trees, values)
    if method == "td_lambda":
        per_node = {(t, leaf, n): x for t, n, leaf, x in con.execute(
            "SELECT tree_id, node_id, leaf_id, target FROM td_lambda_targets(0.7)").fetchall()}
        lookup = lambda t, leaf, n: per_node.get((t, leaf, n))  # noqa: E731
    else:
        name = "math_shepherd_soft" if method == "monte_carlo" else method  # the same numbers on [0, 1]
        per_node = {(t, n): x for t, n, x in con.execute(  # every [0, 1] target mapped to [-1, 1]
            "SELECT tree_id, node_id, 2 * target - 1 FROM prm_targets WHERE method = ?", [name]).fetchall()}
        lookup = lambda t, leaf, n: per_node.get((t, n))  # noqa: E731
    got = con.execute(value_paths_query(method, 0.7)).fetchall()
    expected_leaves = set()
    for t, (parents, terminal, _) in enumerate(trees):
        for leaf in range(1, len(parents)):
            if terminal[leaf] and all(lookup(f"t{t}", leaf, n) is not None for n in _path(parents, leaf)):
                expected_leaves.add((f"t{t}", leaf))
    assert {(t, leaf) for t, leaf, *_ in got} == expected_leaves
    for t, leaf, steps, targets, hard in got:
        path = _path(trees[int(t[1:])][0], leaf)
        assert steps == [f"s{n}\n" for n in path] and len(hard) == len(path)
        assert targets == pytest.approx([lookup(t, leaf, n) for n in path])
