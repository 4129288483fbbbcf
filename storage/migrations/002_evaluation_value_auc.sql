-- Value-model ranking quality on the evaluation trees themselves (held-out problems).
ALTER TABLE evaluations ADD COLUMN value_auc DOUBLE;
COMMENT ON COLUMN evaluations.value_auc IS 'AUC of node values against "a correct terminal lies below" (Math-Shepherd hard label), for value-guided methods.';
