-- Every (terminal leaf, node on its root path) pair, the leaf itself included: the base relation that the
-- Monte Carlo and Math-Shepherd targets aggregate over.
CREATE OR REPLACE VIEW leaf_ancestors AS
WITH RECURSIVE up AS (
    SELECT tree_id, node_id AS leaf_id, node_id, parent_id, coalesce(correct, false) AS correct
    FROM nodes
    WHERE terminal
    UNION ALL
    SELECT up.tree_id, up.leaf_id, p.node_id, p.parent_id, up.correct
    FROM up JOIN nodes p ON p.tree_id = up.tree_id AND p.node_id = up.parent_id
)
SELECT tree_id, leaf_id, node_id, correct FROM up;
