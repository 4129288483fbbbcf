-- Bulk ingest: `nodes` loses its (tree_id, node_id) primary-key index, whose upkeep cost two thirds of
-- ingest time at 10M nodes (benchmarks/trace_store.py). Uniqueness still holds: ingest adds a tree's
-- nodes only together with its `trees` row, whose primary key refuses a second copy of the tree.
CREATE TABLE nodes_v5 (
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
    correct     BOOLEAN
);
INSERT INTO nodes_v5 SELECT * FROM nodes ORDER BY tree_id, node_id;
DROP TABLE nodes;
ALTER TABLE nodes_v5 RENAME TO nodes;
COMMENT ON TABLE nodes IS 'Append-only search tree nodes; root = node 0 with parent -1 (the prompt). Unique per (tree_id, node_id): a tree is ingested whole, once.';
COMMENT ON COLUMN nodes.prior IS 'Policy prior among siblings: exp(mean token log-prob), normalised (TS-LLM).';
COMMENT ON COLUMN nodes.value IS 'Value-model estimate of the state ending at this node, if it was scored.';
COMMENT ON COLUMN nodes.correct IS 'For terminal nodes: whether the answer checks against the gold answer.';
