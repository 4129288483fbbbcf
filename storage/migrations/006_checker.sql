-- The checker that graded each tree, and each evaluation row: math-verify or the sympy checker for MATH,
-- the task's own exact or numeric checker elsewhere (problems/grading.py). Trees stored before have none.
ALTER TABLE trees ADD COLUMN checker VARCHAR;
ALTER TABLE evaluations ADD COLUMN checker VARCHAR;
COMMENT ON COLUMN trees.checker IS 'The checker that graded the tree''s answers: exact, numeric, sympy or math_verify.';
COMMENT ON COLUMN evaluations.checker IS 'The checker that graded the evaluation''s trees.';
