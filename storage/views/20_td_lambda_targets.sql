-- TD(lambda) value targets (gamma = 1), per (step, terminal leaf) like the MC targets:
--   delta_t = r_t + V(s_{t+1}) - V(s_t),  A_t = delta_t + lambda A_{t+1},  target_t = A_t + V(s_t),
-- with the path's final reward (+1 / -1) as the only reward, on the step into the terminal state, so
-- the terminal step's target is that reward and, walking up, target_t = (1 - lambda) V(s_{t+1})
-- + lambda target_{t+1}. V is the value the search recorded (0 where a node was never scored).
-- lambda = 1 gives the MC targets; lambda = 0 gives TD(0). Use: SELECT * FROM td_lambda_targets(0.9).
CREATE OR REPLACE MACRO td_lambda_targets(lam) AS TABLE
WITH RECURSIVE up AS (
    SELECT tree_id, node_id AS leaf_id, node_id, parent_id, coalesce(value, 0.0) AS v,
           CASE WHEN coalesce(correct, false) THEN 1.0 ELSE -1.0 END::DOUBLE AS target
    FROM nodes
    WHERE terminal AND node_id <> 0
    UNION ALL
    SELECT up.tree_id, up.leaf_id, p.node_id, p.parent_id, coalesce(p.value, 0.0),
           (1 - lam) * up.v + lam * up.target
    FROM up JOIN nodes p ON p.tree_id = up.tree_id AND p.node_id = up.parent_id
    WHERE p.node_id <> 0
)
SELECT tree_id, node_id, leaf_id, target FROM up;
