-- ReST-MCTS* quality values. Reasoning distance m_k: the fewest further steps from node k to a correct
-- terminal below it (0 at a correct terminal); a node with no correct terminal below inherits m from its
-- nearest ancestor that has one, and r_k = 1 for it (else 0). Along every root path:
--   v_0 = 0,  w_k = (1 - v_{k-1}) / (m_k + 1) * (1 - 2 r_k),  v_k = max(v_{k-1} + w_k, 0).
-- A correct K-step path gets v_k = k / K. Trees with no correct leaf give no rows.
CREATE OR REPLACE VIEW rest_mcts_values AS
WITH RECURSIVE
own AS (  -- m_k where a correct terminal lies below node k
    SELECT a.tree_id, a.node_id, min(l.depth - n.depth) AS m
    FROM leaf_ancestors a
    JOIN nodes l ON l.tree_id = a.tree_id AND l.node_id = a.leaf_id
    JOIN nodes n ON n.tree_id = a.tree_id AND n.node_id = a.node_id
    WHERE a.correct
    GROUP BY ALL
),
walk AS (
    SELECT n.tree_id, n.node_id, 0 AS depth, o.m AS m, 0.0::DOUBLE AS v
    FROM nodes n JOIN own o ON o.tree_id = n.tree_id AND o.node_id = n.node_id
    WHERE n.parent_id = -1
    UNION ALL
    SELECT c.tree_id, c.node_id, walk.depth + 1,
           coalesce(o.m, walk.m),
           greatest(walk.v + (1 - walk.v) / (coalesce(o.m, walk.m) + 1)
                             * (CASE WHEN o.m IS NULL THEN -1 ELSE 1 END), 0)
    FROM walk
    JOIN nodes c ON c.tree_id = walk.tree_id AND c.parent_id = walk.node_id
    LEFT JOIN own o ON o.tree_id = c.tree_id AND o.node_id = c.node_id
)
SELECT tree_id, node_id, m AS reasoning_distance, v AS quality_value FROM walk;
