# The treeflow worker image. CPU by default; the GPU workers of docker-compose.yml build it with
# TORCH_INDEX=https://download.pytorch.org/whl/cu128 (a CUDA torch build; the NVIDIA driver comes from the host).
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /opt/treeflow
COPY pyproject.toml constraints.txt README.md prefect.yaml ./
COPY configs configs
COPY problems problems
COPY search search
COPY models models
COPY storage storage
COPY tasks tasks
COPY flows flows
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX} \
 && pip install --no-cache-dir -c constraints.txt .
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false MLFLOW_DISABLE_TELEMETRY=true HF_HUB_DISABLE_TELEMETRY=1
