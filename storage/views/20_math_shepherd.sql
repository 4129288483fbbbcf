-- Math-Shepherd step labels: soft = fraction of the terminal leaves below a node that are correct,
-- hard = whether any is. One row per node with at least one terminal leaf below it (root included).
CREATE OR REPLACE VIEW math_shepherd AS
SELECT tree_id, node_id, avg(correct::INT)::DOUBLE AS soft_label, bool_or(correct) AS hard_label,
       count(*) AS leaves
FROM leaf_ancestors
GROUP BY tree_id, node_id;
