-- The value-training paths for the other target methods, shaped like value_paths (one row per
-- root-to-terminal path, the step texts and one target per step, on [-1, 1]):
--   value_paths_td(lambda): TD(lambda) targets, which depend on the leaf the path ends in;
--   value_paths_rest_mcts: ReST-MCTS* quality values v_k mapped to 2 v_k - 1 (trees with a correct leaf).
CREATE OR REPLACE MACRO value_paths_td(lam) AS TABLE
SELECT x.tree_id, x.leaf_id,
       list(n.step_text ORDER BY n.depth) AS steps,
       list(x.target ORDER BY n.depth) AS targets
FROM td_lambda_targets(lam) x
JOIN nodes n USING (tree_id, node_id)
GROUP BY x.tree_id, x.leaf_id;

CREATE OR REPLACE VIEW value_paths_rest_mcts AS
SELECT la.tree_id, la.leaf_id,
       list(n.step_text ORDER BY n.depth) AS steps,
       list(2 * r.quality_value - 1 ORDER BY n.depth) AS targets
FROM leaf_ancestors la
JOIN nodes n USING (tree_id, node_id)
JOIN rest_mcts_values r USING (tree_id, node_id)
WHERE la.node_id <> 0
GROUP BY la.tree_id, la.leaf_id;
