-- The full text of every node's state: the problem's prompt followed by the steps from the root.
CREATE OR REPLACE VIEW node_states AS
WITH RECURSIVE down AS (
    SELECT n.tree_id, n.node_id, pr.prompt AS state
    FROM nodes n JOIN trees t USING (tree_id) JOIN problems pr USING (problem_id)
    WHERE n.parent_id = -1
    UNION ALL
    SELECT c.tree_id, c.node_id, down.state || c.step_text
    FROM down JOIN nodes c ON c.tree_id = down.tree_id AND c.parent_id = down.node_id
)
SELECT tree_id, node_id, state FROM down;
