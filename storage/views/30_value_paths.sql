-- Token-level value training rows (TS-LLM's critic): one row per root-to-terminal-leaf path, with the
-- path's step texts in order and, per step, the Monte Carlo value of the state it ends in: the mean
-- outcome (+1 correct, -1 wrong) of all terminal leaves below that step (`targets`), and Math-Shepherd's
-- hard estimate, +1 if any leaf below is correct, else -1 (`hard_targets`). A step shared by several
-- paths appears once per path, so each state is weighted by the leaves below it, as in mc_targets.
CREATE OR REPLACE VIEW value_paths AS
SELECT la.tree_id, la.leaf_id,
       list(n.step_text ORDER BY n.depth) AS steps,
       list(2 * ms.soft_label - 1 ORDER BY n.depth) AS targets,
       list(CASE WHEN ms.hard_label THEN 1.0 ELSE -1.0 END ORDER BY n.depth) AS hard_targets
FROM leaf_ancestors la
JOIN nodes n USING (tree_id, node_id)
JOIN math_shepherd ms USING (tree_id, node_id)
WHERE la.node_id <> 0
GROUP BY la.tree_id, la.leaf_id;
