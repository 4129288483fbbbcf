-- Sibling preference pairs (rStar-Math style): two steps with the same parent (the same prefix), the
-- chosen one with a correct terminal below it, the rejected one with terminals below but none correct.
CREATE OR REPLACE VIEW preference_pairs AS
SELECT c.tree_id, n.parent_id, c.node_id AS chosen_id, r.node_id AS rejected_id,
       c.soft_label AS chosen_label, r.soft_label AS rejected_label
FROM math_shepherd c
JOIN nodes n ON n.tree_id = c.tree_id AND n.node_id = c.node_id
JOIN nodes m ON m.tree_id = c.tree_id AND m.parent_id = n.parent_id AND m.node_id <> n.node_id
JOIN math_shepherd r ON r.tree_id = m.tree_id AND r.node_id = m.node_id
WHERE c.hard_label AND NOT r.hard_label;
