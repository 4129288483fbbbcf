-- Sibling preference pairs (rStar-Math style): two steps with the same parent (the same prefix), the
-- chosen one with a correct terminal below it, the rejected one with terminals below but none correct.
-- The Math-Shepherd labels are computed once and joined to themselves (half the work of joining the
-- view twice).
CREATE OR REPLACE VIEW preference_pairs AS
WITH labelled AS MATERIALIZED (
    SELECT m.tree_id, m.node_id, n.parent_id, m.soft_label, m.hard_label
    FROM math_shepherd m JOIN nodes n USING (tree_id, node_id)
    WHERE n.parent_id <> -1
)
SELECT c.tree_id, c.parent_id, c.node_id AS chosen_id, r.node_id AS rejected_id,
       c.soft_label AS chosen_label, r.soft_label AS rejected_label
FROM labelled c JOIN labelled r ON r.tree_id = c.tree_id AND r.parent_id = c.parent_id
WHERE c.hard_label AND NOT r.hard_label;
