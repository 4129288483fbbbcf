-- Monte Carlo value targets (TS-LLM, gamma = 1): every step on a root-to-leaf path gets that path's
-- final reward (+1 correct, -1 wrong), one row per (step, terminal leaf below it). Training on these
-- rows by MSE regresses each state onto its mean outcome. The root (the bare prompt) is not a step.
CREATE OR REPLACE VIEW mc_targets AS
SELECT tree_id, node_id, leaf_id, (CASE WHEN correct THEN 1.0 ELSE -1.0 END)::DOUBLE AS target
FROM leaf_ancestors
WHERE node_id <> 0;
