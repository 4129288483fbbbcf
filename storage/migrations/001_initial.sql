-- The trace store's first schema: runs, problems, searched trees node by node, evaluations.

CREATE TABLE runs (
    run_id      VARCHAR PRIMARY KEY,
    created_at  TIMESTAMP DEFAULT current_timestamp,
    kind        VARCHAR NOT NULL,
    config      JSON,
    code_version VARCHAR
);
COMMENT ON TABLE runs IS 'One row per flywheel / evaluation run; every tree belongs to one.';
COMMENT ON COLUMN runs.config IS 'The validated run configuration, as JSON.';

CREATE TABLE problems (
    problem_id  VARCHAR PRIMARY KEY,
    task        VARCHAR NOT NULL,
    question    VARCHAR NOT NULL,
    gold        VARCHAR NOT NULL,
    prompt      VARCHAR NOT NULL
);
COMMENT ON TABLE problems IS 'Problems that have been searched; the gold answer is used only to label leaves.';

CREATE TABLE trees (
    tree_id     VARCHAR PRIMARY KEY,
    run_id      VARCHAR NOT NULL,
    iteration   INTEGER NOT NULL,
    stage       VARCHAR NOT NULL,
    split       VARCHAR NOT NULL,
    method      VARCHAR NOT NULL,
    problem_id  VARCHAR NOT NULL,
    policy      VARCHAR,
    value_model VARCHAR,
    answer      VARCHAR,
    correct     BOOLEAN NOT NULL,
    generated_tokens BIGINT NOT NULL,
    value_states BIGINT NOT NULL,
    chosen_path INTEGER[],
    shard       VARCHAR,
    ingested_at TIMESTAMP DEFAULT current_timestamp
);
COMMENT ON TABLE trees IS 'One searched tree per (run, iteration, stage, method, problem).';
COMMENT ON COLUMN trees.stage IS 'What the search was for: search (training data), eval (evaluation), bootstrap.';
COMMENT ON COLUMN trees.generated_tokens IS 'Every generated token of every sampled candidate, chosen or not.';
COMMENT ON COLUMN trees.chosen_path IS 'Node ids from the root to the node whose answer the method returned.';

CREATE TABLE nodes (
    tree_id     VARCHAR NOT NULL,
    node_id     INTEGER NOT NULL,
    parent_id   INTEGER NOT NULL,
    depth       INTEGER NOT NULL,
    step_text   VARCHAR NOT NULL,
    prior       DOUBLE,
    value       DOUBLE,
    visits      INTEGER NOT NULL,
    value_sum   DOUBLE NOT NULL,
    tokens      INTEGER NOT NULL,
    logprob     DOUBLE,
    terminal    BOOLEAN NOT NULL,
    answer      VARCHAR,
    correct     BOOLEAN,
    PRIMARY KEY (tree_id, node_id)
);
COMMENT ON TABLE nodes IS 'Append-only search tree nodes; root = node 0 with parent -1 (the prompt).';
COMMENT ON COLUMN nodes.prior IS 'Policy prior among siblings: exp(mean token log-prob), normalised (TS-LLM).';
COMMENT ON COLUMN nodes.value IS 'Value-model estimate of the state ending at this node, if it was scored.';
COMMENT ON COLUMN nodes.correct IS 'For terminal nodes: whether the answer checks against the gold answer.';

CREATE TABLE evaluations (
    run_id      VARCHAR NOT NULL,
    iteration   INTEGER NOT NULL,
    method      VARCHAR NOT NULL,
    split       VARCHAR NOT NULL,
    budget      INTEGER,
    n_problems  INTEGER NOT NULL,
    accuracy    DOUBLE NOT NULL,
    tokens_per_problem DOUBLE NOT NULL,
    value_states_per_problem DOUBLE NOT NULL,
    policy      VARCHAR,
    value_model VARCHAR,
    wall_seconds DOUBLE,
    PRIMARY KEY (run_id, iteration, method, split)
);
COMMENT ON TABLE evaluations IS 'Accuracy and cost of each method per run and iteration, from its trees.';
