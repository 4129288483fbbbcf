"""The MLflow model every registered treeflow version carries, logged as code (MLflow's models-from-code):
MLflow stores this file with the version instead of a pickled object, so loading it runs no pickle.

The model's content is its `model` artifact, a Hugging Face directory; treeflow downloads and loads that
directory itself (`models.errors.resolve_model`), and `predict` says so.
"""

import mlflow


class ModelDirectory(mlflow.pyfunc.PythonModel):
    """A Hugging Face model directory carried as an MLflow model."""

    def predict(self, context, model_input: list[str], params: dict | None = None) -> list[str]:
        raise NotImplementedError("load the `model` artifact with treeflow (models.errors.resolve_model)")


mlflow.models.set_model(ModelDirectory())
