-- D+: correct root-to-terminal paths, as (prompt, completion) pairs, one row per (tree, path). Two trees
-- of a problem can hold the same path: SELECT DISTINCT prompt, completion to deduplicate. `min_value` is
-- the lowest value the search recorded along the path (NULL if no step was scored), for an optional
-- threshold (WHERE min_value >= 0.5); `min_logprob` the policy's least confident step along it (the lowest mean
-- token log-prob), to keep the traces the policy was sure of: a right answer is often reached through a wrong
-- step (docs/testbed.md, "Right answers, wrong steps"); `steps` is the path's length.
CREATE OR REPLACE VIEW sft_traces AS
WITH RECURSIVE walk AS (
    SELECT tree_id, node_id AS leaf_id, parent_id, step_text AS completion,
           CASE WHEN parent_id <> -1 THEN value END AS min_value,
           CASE WHEN parent_id <> -1 THEN logprob END AS min_logprob, (parent_id <> -1)::INT AS steps
    FROM nodes WHERE terminal AND correct
    UNION ALL
    SELECT w.tree_id, w.leaf_id, p.parent_id, p.step_text || w.completion,
           CASE WHEN p.parent_id = -1 THEN w.min_value ELSE least(w.min_value, p.value) END,
           CASE WHEN p.parent_id = -1 THEN w.min_logprob ELSE least(w.min_logprob, p.logprob) END,
           w.steps + (p.parent_id <> -1)::INT
    FROM walk w JOIN nodes p ON p.tree_id = w.tree_id AND p.node_id = w.parent_id
)
SELECT t.run_id, t.iteration, t.stage, t.tree_id, w.leaf_id, t.problem_id, pr.prompt, w.completion,
       w.min_value, w.min_logprob, w.steps
FROM walk w
JOIN trees t USING (tree_id)
JOIN problems pr USING (problem_id)
WHERE w.parent_id = -1;
