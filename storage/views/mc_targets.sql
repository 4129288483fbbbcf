-- Monte Carlo value targets (TS-LLM, gamma = 1): every step on a root-to-leaf path gets that path's
-- final reward (+1 correct, -1 wrong), one row per (step, terminal leaf below it). Training on these
-- rows by MSE regresses each state onto its mean outcome.
CREATE OR REPLACE VIEW mc_targets AS
WITH RECURSIVE up AS (
    SELECT n.tree_id, n.node_id AS leaf_id, n.node_id, n.parent_id,
           CASE WHEN n.correct THEN 1.0 ELSE -1.0 END AS target
    FROM nodes n
    WHERE n.terminal
    UNION ALL
    SELECT up.tree_id, up.leaf_id, p.node_id, p.parent_id, up.target
    FROM up JOIN nodes p ON p.tree_id = up.tree_id AND p.node_id = up.parent_id
)
SELECT tree_id, node_id, leaf_id, target FROM up WHERE node_id <> 0;
