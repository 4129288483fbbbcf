-- Evaluations at several budgets and seeds (treeflow evaluate --budgets), with full cost accounting.
ALTER TABLE trees ADD COLUMN budget INTEGER;
ALTER TABLE trees ADD COLUMN seed INTEGER DEFAULT 0;
COMMENT ON COLUMN trees.budget IS 'The generated-token budget the method ran under (NULL: none).';
COMMENT ON COLUMN trees.seed IS 'Sampling seed of the search.';

CREATE TABLE evaluations_v3 (
    run_id      VARCHAR NOT NULL,
    iteration   INTEGER NOT NULL,
    method      VARCHAR NOT NULL,
    split       VARCHAR NOT NULL,
    budget      INTEGER,
    seed        INTEGER NOT NULL DEFAULT 0,
    n_problems  INTEGER NOT NULL,
    accuracy    DOUBLE NOT NULL,
    tokens_per_problem DOUBLE NOT NULL,
    value_states_per_problem DOUBLE NOT NULL,
    prefill_tokens_per_problem DOUBLE,
    value_tokens_per_problem DOUBLE,
    policy_calls BIGINT,
    value_calls BIGINT,
    policy      VARCHAR,
    value_model VARCHAR,
    wall_seconds DOUBLE,
    value_auc   DOUBLE
);
INSERT INTO evaluations_v3 (run_id, iteration, method, split, budget, n_problems, accuracy, tokens_per_problem,
                            value_states_per_problem, policy, value_model, wall_seconds, value_auc)
    SELECT run_id, iteration, method, split, budget, n_problems, accuracy, tokens_per_problem,
           value_states_per_problem, policy, value_model, wall_seconds, value_auc FROM evaluations;
DROP TABLE evaluations;
ALTER TABLE evaluations_v3 RENAME TO evaluations;
COMMENT ON TABLE evaluations IS 'Accuracy and cost of each method per run, iteration, budget and seed, from its trees (one row each).';
COMMENT ON COLUMN evaluations.tokens_per_problem IS 'Generated tokens per problem: every sampled candidate, chosen or not.';
COMMENT ON COLUMN evaluations.prefill_tokens_per_problem IS 'Prompt tokens the policy prefilled per problem (cached prefixes count once per call).';
COMMENT ON COLUMN evaluations.value_tokens_per_problem IS 'Tokens the value / reward model scored per problem.';
COMMENT ON COLUMN evaluations.policy_calls IS 'Batched policy calls (all trees of a batch share each call).';
COMMENT ON COLUMN evaluations.value_calls IS 'Batched value-model calls.';
COMMENT ON COLUMN evaluations.value_auc IS 'AUC of node values against "a correct terminal lies below" (Math-Shepherd hard label), for value-guided methods.';
