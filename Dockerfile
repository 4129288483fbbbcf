# The treeflow worker image (CPU). For GPU workers, start from an NVIDIA CUDA base and install the
# matching torch build plus `.[vllm]`.
FROM python:3.11-slim
WORKDIR /opt/treeflow
COPY pyproject.toml constraints.txt README.md ./
COPY problems problems
COPY search search
COPY models models
COPY storage storage
COPY tasks tasks
COPY flows flows
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -c constraints.txt .
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false MLFLOW_DISABLE_TELEMETRY=true
