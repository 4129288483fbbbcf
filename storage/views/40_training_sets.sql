-- Training sets, ready for a trainer (treeflow export VIEW, or storage.datasets.load(VIEW)).
--
-- prm_targets: the value / PRM regression set, one row per (step, target method): `prefix` is the state
-- before the step (prompt and earlier steps), `step` the step, `target` the method's value of the state
-- after it. Methods and scales: monte_carlo (mean outcome below the step, in [-1, 1]),
-- math_shepherd_soft (fraction of correct leaves below, [0, 1]), math_shepherd_hard (any correct
-- below, 0 / 1), rest_mcts (ReST-MCTS* quality value v_k, [0, 1]). For TD(lambda) targets use the
-- macro prm_targets_td(lambda). The Monte Carlo and Math-Shepherd targets exist for steps with a
-- terminal leaf below them; ReST-MCTS* values for every step of a tree that has a correct leaf.
CREATE OR REPLACE VIEW prm_targets AS
WITH steps AS (
    SELECT t.run_id, t.iteration, t.stage, n.tree_id, n.node_id, p.state AS prefix, n.step_text AS step
    FROM nodes n
    JOIN trees t USING (tree_id)
    JOIN node_states p ON p.tree_id = n.tree_id AND p.node_id = n.parent_id
    WHERE n.parent_id <> -1
),
targets AS (
    SELECT tree_id, node_id, 'monte_carlo' AS method, avg(target) AS target FROM mc_targets GROUP BY ALL
    UNION ALL
    SELECT tree_id, node_id, 'math_shepherd_soft', soft_label FROM math_shepherd
    UNION ALL
    SELECT tree_id, node_id, 'math_shepherd_hard', hard_label::INT::DOUBLE FROM math_shepherd
    UNION ALL
    SELECT tree_id, node_id, 'rest_mcts', quality_value FROM rest_mcts_values
)
SELECT s.run_id, s.iteration, s.stage, s.tree_id, s.node_id, s.prefix, s.step, x.method, x.target
FROM steps s JOIN targets x USING (tree_id, node_id);

CREATE OR REPLACE MACRO prm_targets_td(lam) AS TABLE
SELECT t.run_id, t.iteration, t.stage, n.tree_id, n.node_id, p.state AS prefix, n.step_text AS step,
       'td_lambda' AS method, avg(x.target) AS target
FROM td_lambda_targets(lam) x
JOIN nodes n USING (tree_id, node_id)
JOIN trees t USING (tree_id)
JOIN node_states p ON p.tree_id = n.tree_id AND p.node_id = n.parent_id
GROUP BY ALL;

-- orm_rows: the outcome reward model's set: every answered terminal path as (prompt, completion, label).
CREATE OR REPLACE VIEW orm_rows AS
SELECT t.run_id, t.iteration, t.stage, n.tree_id, n.node_id AS leaf_id, pr.prompt,
       substr(s.state, length(pr.prompt) + 1) AS completion, coalesce(n.correct, false) AS label
FROM nodes n
JOIN trees t USING (tree_id)
JOIN problems pr USING (problem_id)
JOIN node_states s USING (tree_id, node_id)
WHERE n.terminal AND n.answer IS NOT NULL;

-- run_models: every model a run used (to search or evaluate) or produced (trained), with how.
CREATE OR REPLACE VIEW run_models AS
SELECT DISTINCT run_id, 'policy' AS model_kind, policy AS model_uri, 'used' AS role FROM trees WHERE policy IS NOT NULL
UNION
SELECT DISTINCT run_id, 'value', value_model, 'used' FROM trees WHERE value_model IS NOT NULL
UNION
SELECT run_id, model_kind, model_uri, 'trained' FROM training_snapshots;
