-- Which rows fed which model: one snapshot per training, with the exact query that selected its rows.
CREATE TABLE training_snapshots (
    snapshot_id  VARCHAR PRIMARY KEY,
    run_id       VARCHAR NOT NULL,
    iteration    INTEGER NOT NULL,
    model_kind   VARCHAR NOT NULL,
    model_uri    VARCHAR NOT NULL,
    init_uri     VARCHAR,
    source_view  VARCHAR NOT NULL,
    target_method VARCHAR,
    query        VARCHAR NOT NULL,
    query_params JSON,
    n_rows       BIGINT NOT NULL,
    tree_ids     VARCHAR[] NOT NULL,
    rows_sha256  VARCHAR NOT NULL,
    extra_rows   BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMP DEFAULT current_timestamp
);
COMMENT ON TABLE training_snapshots IS 'One row per trained model version: the trace-store rows it was trained on.';
COMMENT ON COLUMN training_snapshots.model_kind IS 'policy or value.';
COMMENT ON COLUMN training_snapshots.model_uri IS 'Where the trained model was written (a directory, or models:/NAME/VERSION once registered).';
COMMENT ON COLUMN training_snapshots.query IS 'The SELECT that produced the training rows (re-run it with query_params to get them back).';
COMMENT ON COLUMN training_snapshots.tree_ids IS 'The trees whose nodes the rows came from.';
COMMENT ON COLUMN training_snapshots.rows_sha256 IS 'SHA-256 of the rows as fed to the trainer, in order: a re-run query must give the same digest.';
COMMENT ON COLUMN training_snapshots.extra_rows IS 'Rows from outside the store mixed in (e.g. original demonstrations for the tiny policy).';
COMMENT ON COLUMN runs.code_version IS 'treeflow version and git commit of the code that ran.';
