-- D+: distinct correct root-to-terminal paths of each problem, as (prompt, completion) pairs.
CREATE OR REPLACE VIEW sft_traces AS
WITH RECURSIVE walk AS (
    SELECT tree_id, node_id, parent_id, step_text AS completion FROM nodes WHERE terminal AND correct
    UNION ALL
    SELECT w.tree_id, w.node_id, p.parent_id, p.step_text || w.completion
    FROM walk w JOIN nodes p ON p.tree_id = w.tree_id AND p.node_id = w.parent_id
)
SELECT DISTINCT t.run_id, t.iteration, t.stage, t.problem_id, pr.prompt, w.completion
FROM walk w
JOIN trees t USING (tree_id)
JOIN problems pr USING (problem_id)
WHERE w.parent_id = -1;
