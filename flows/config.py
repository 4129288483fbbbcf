"""The flywheel's configuration: one pydantic model composed of each component's own settings.

Unknown keys are errors (with the path of the key), so a typo in a YAML config fails before any work.
This model is also the Prefect flow's parameter schema (the form in the Prefect UI).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.prompts import BOXED_SYSTEM_PROMPT
from models.tiny import TinyRecipe
from models.training import RewardSettings, SFTSettings, ValueSettings
from search.bfs_v import BFSVConfig
from search.mcts_alpha import MCTSAlphaConfig


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSettings(_Strict):
    """Which problems: `options` go to the task's loader (e.g. arithmetic's n_ops, gsm8k's source, math's
    source, levels and subjects)."""

    name: Literal["arithmetic", "countdown", "game24", "gsm8k", "math"] = Field(
        "arithmetic", description="the task: its problems, step format and answer checker (problems/)")
    train_per_iteration: int = Field(256, ge=1, description="fresh training problems searched per iteration")
    test_size: int = Field(200, ge=1, description="test problems every method is evaluated on")
    options: dict = Field(default_factory=dict, description="the task loader's settings, e.g. {source: "
                                                            "../shared/data/gsm8k} or {levels: [4, 5]} for math")


class PolicySettings(_Strict):
    """The policy: a model directory / hub id, or None for the built-in tiny model (bootstrapped, cached)."""

    path: str | None = Field(None, description="a model directory, hub id or models:/NAME@ALIAS (None: the tiny "
                                               "model of `tiny`)")
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature of every sampled step")
    max_step_tokens: int | None = Field(
        None, ge=1, description="a step ends at its delimiter, EOS or this many tokens (default: 24 for the tiny "
                                "model's one-operation lines, 256 for a given model's GSM8K / MATH steps)")
    step_delimiter: str = Field("\n", description="what ends a step: a line (\"\\n\", the tiny models) or a blank "
                                                 "line (\"\\n\\n\", as instruct models write steps); ends in a "
                                                 "newline")
    prompt_format: Literal["plain", "chat"] = Field(
        "plain", description="plain: the task's own prompt (`Question: ...\\nAnswer:\\n`); chat: the policy "
                             "tokenizer's chat template over `system_prompt` and the question, the assistant turn "
                             "opened (instruct models)")
    system_prompt: str = Field(BOXED_SYSTEM_PROMPT, description="the system turn of chat prompts")
    max_batch_rows: int = Field(512, ge=1, description="rows per forward pass of the policy (memory bound)")
    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="vllm: GPU workers with vLLM installed (prefix caching on)")
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0, description="the GPU memory vLLM takes for the "
                                                                         "policy (leave room for a value model "
                                                                         "or PRM on the same GPU)")
    device: str = Field("cpu", description="transformers backend and value model: cpu, cuda, cuda:1, ..., or auto "
                                           "(the GPU of whichever worker runs the step, where it has one)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights of the policy and value model at search: auto is bfloat16 on a GPU that has "
                            "it, float32 on the CPU (training keeps float32 weights, bf16 autocast on GPUs)")

    @model_validator(mode="before")
    @classmethod
    def _step_length(cls, data):
        if isinstance(data, dict) and data.get("max_step_tokens") is None:
            data = {**data, "max_step_tokens": 24 if data.get("path") is None else 256}
        return data

    @field_validator("step_delimiter")
    @classmethod
    def _ends_a_line(cls, v: str) -> str:
        if not v or not v.endswith("\n"):
            raise ValueError(f"a step delimiter ends in a newline, e.g. \"\\n\" or \"\\n\\n\" (got {v!r})")
        return v


class ValueBootstrap(_Strict):
    """The first value model: given (`path`), or trained on the configured targets of sampled rollouts from a
    backbone (`init`; default: the policy)."""

    path: str | None = Field(None, description="a trained value model to start from (no bootstrap training), or a "
                                               "published PRM used as it is, never refit: prm:FORMAT:AGGREGATION:"
                                               "MODEL with FORMAT math_shepherd, qwen or chat and AGGREGATION "
                                               "last, min or prod (models/prm.py)")
    init: str | None = Field(None, description="the causal LM (directory, hub id or models:/ URI) the first "
                                               "value model is trained from, e.g. a larger LM than the policy "
                                               "(ReST-MCTS*); default: the policy")
    problems: int = Field(256, ge=1, description="training problems sampled for the first value model's targets")
    rollouts: int = Field(8, ge=1, description="samples per problem")

    @model_validator(mode="after")
    def _one_start(self) -> ValueBootstrap:
        if self.path is not None and self.init is not None:
            raise ValueError("give value.path (a trained value model) or value.init (a backbone to train one "
                             "from), not both")
        return self


Method = Literal["greedy", "self_consistency", "best_of_n_orm", "best_of_n_prm", "beam_prm", "dvts", "bfs_v",
                 "dfs_v", "mcts_alpha", "mcts_rollout", "mcts_star"]


class EvaluationSettings(_Strict):
    """Every method runs on the same test problems with the same per-problem generated-token budgets."""

    methods: list[Method] = Field(["greedy", "self_consistency", "mcts_alpha"],
                                  description="methods evaluated at iteration 0 (search.METHODS)")
    later_methods: list[Method] | None = Field(
        None, description="methods evaluated after iterations 1.. (default: all of `methods`)")
    token_budget: int = Field(800, ge=1, description="generated tokens per problem; tree searches stop at it, "
                                                     "so it must let them finish (MCTS-alpha needs ~450-600 here)")
    budgets: list[int] | None = Field(
        None, description="evaluate every method at each of these budgets (default: [token_budget])")
    max_samples: int = Field(16, ge=1, description="Self-Consistency / Best-of-N pool size (cut to the budget)")
    test_sizes: dict[Method, int] = Field(
        default_factory=dict, description="methods evaluated on another number of test problems than "
                                          "task.test_size, e.g. {greedy: 2000}: greedy is cheap, and on 2,000 "
                                          "problems one standard error is about 1 point instead of 3 on 200")
    settings: dict[str, dict] = Field(
        default_factory=dict, description="per-method settings over the defaults, e.g. {dfs_v: {k: 3}}; "
                                          "mcts_alpha and bfs_v start from `search` and `bfs_v`")

    @model_validator(mode="after")
    def _known_settings(self) -> EvaluationSettings:
        from search import METHODS

        for name, values in self.settings.items():
            if name not in METHODS:
                raise ValueError(f"settings: unknown method '{name}' (known: {', '.join(sorted(METHODS))})")
            fields = {f.name for f in dataclasses.fields(METHODS[name][1])}
            for key in values:
                if key not in fields:
                    raise ValueError(f"settings.{name}: unknown key '{key}' (known: {', '.join(sorted(fields))})")
        if self.budgets is not None and (not self.budgets or min(self.budgets) < 1):
            raise ValueError("budgets: a non-empty list of positive token counts")
        for name, size in self.test_sizes.items():
            if size < 1:
                raise ValueError(f"test_sizes.{name}: expected at least 1 test problem, got {size}")
        return self


class TraceFilter(_Strict):
    """Which of an iteration's correct traces (D+) the policy's SFT keeps, beyond their answer checking. None
    reads the gold answer; on the testbed a right answer is often reached through a wrong step (docs/testbed.md,
    "Right answers, wrong steps"). A path with nothing recorded passes (sampled paths carry no values)."""

    min_value: float | None = Field(None, description="keep a path the search valued at least this at every step "
                                                      "(ReST-MCTS*'s value filter)")
    min_logprob: float | None = Field(None, description="keep a path whose least confident step has at least this "
                                                        "mean token log-prob under the policy that sampled it")
    equations: bool = Field(False, description="keep a path whose every written equation (`a op b = c`) holds by "
                                               "a calculator's arithmetic (the store's equations_hold macro)")


class ORMSettings(_Strict):
    """An outcome reward model trained each iteration (TRL RewardTrainer on correct-vs-wrong final answers
    of the same tree); Best-of-N ORM then reads it instead of the value model."""

    enabled: bool = Field(False, description="train an ORM each iteration")
    pairs_per_tree: int = Field(4, ge=1, description="at most this many (correct, wrong) pairs per tree")
    training: RewardSettings = RewardSettings(max_steps=100)


class RestEMSettings(_Strict):
    """The ReST-EM baseline: sample `samples` solutions per training problem instead of searching, keep the
    correct ones, SFT. Everything else (problems, SFT, value refit, evaluation) is the flywheel's."""

    samples: int = Field(16, ge=1, description="samples per training problem (cut to `token_budget`)")
    token_budget: int | None = Field(
        None, description="generated tokens per training problem (default: search.token_budget, else "
                          "evaluation.token_budget), the same cap the search flywheel's tree search runs under")


class TrainingSearch(_Strict):
    """The tree search the flywheel generates its training trees with. MCTS-alpha runs as `search` says, BFS-V
    as `bfs_v` says, each with `settings` over those for training only (evaluation keeps its own), and capped
    at `search.token_budget` generated tokens per problem, the cap ReST-EM samples under."""

    method: Literal["mcts_alpha", "bfs_v"] = Field("mcts_alpha", description="the tree search that generates")
    settings: dict[str, int | float | bool | str | None] = Field(
        default_factory=dict, description="settings of `method` over `search` / `bfs_v`, e.g. {k: 10, beam: 1}")

    @model_validator(mode="after")
    def _known_settings(self) -> TrainingSearch:
        from search import METHODS

        fields = {f.name for f in dataclasses.fields(METHODS[self.method][1])} - {"seed", "token_budget"}
        for key in self.settings:
            if key not in fields:
                raise ValueError(f"settings: unknown key '{key}' of {self.method} (known: "
                                 f"{', '.join(sorted(fields))}; the cap is search.token_budget)")
        return self


class GenerationSettings(_Strict):
    """How training-problem generation fans out: shards of `shard_size` problems, each one search task
    writing one Parquet shard, `parallelism` at a time; then one ingest."""

    shard_size: int = Field(256, ge=1, description="problems per search task and Parquet shard")
    parallelism: int = Field(1, ge=1, description="shards searched at once")
    runner: Literal["local", "deployment", "ray"] = Field(
        "local", description="local: the flow's task runner; deployment: a run of `deployment` per shard (GPU "
                             "workers); ray: a Ray cluster via prefect-ray (flows/generate.py)")
    deployment: str = Field("generate/treeflow", description="FLOW/DEPLOYMENT each shard runs as (runner: "
                                                             "deployment)")
    ray_address: str | None = Field(None, description="runner ray: the cluster (e.g. ray://head:10001); "
                                                      "None starts a local Ray")


class TrainingPlacement(_Strict):
    """Where each iteration's training runs: in the flow's process, or as a run of `deployment` (a `train`
    deployment on the GPU work pool; it must share the work directory)."""

    runner: Literal["local", "deployment"] = Field("local", description="local: in the flow's process; "
                                                                      "deployment: a run of `deployment`")
    deployment: str = Field("train/treeflow", description="FLOW/DEPLOYMENT the training runs as (runner: "
                                                          "deployment)")


class RegistrySettings(_Strict):
    """Register every trained model in MLflow (alias `candidate`); move `champion` when the gate passes."""

    enabled: bool = Field(True, description="register the models and move the aliases")
    gate_metric: str = Field("greedy/accuracy", description="METHOD/FIELD of the iteration's evaluation rows")
    margin: float = Field(0.0, description="the candidate must reach the reference plus this")

    @model_validator(mode="after")
    def _metric_shape(self) -> RegistrySettings:
        method, _, field = self.gate_metric.partition("/")
        if not method or field not in ("accuracy", "value_auc"):
            raise ValueError(f"gate_metric: expected METHOD/accuracy or METHOD/value_auc, "
                             f"got '{self.gate_metric}'")
        return self


class FlywheelConfig(_Strict):
    """One flywheel run: search -> store -> SFT policy -> retrain value -> evaluate, `iterations` times."""

    workdir: str = Field("work", description="the run's store, shards, models, MLflow database and cache")
    cache_dir: str | None = Field(None, description="bootstrap cache (default: <workdir>/cache)")
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                               description="restarting a run with its run id resumes it (default: a new id)")
    iterations: int = Field(2, ge=0, description="iterations after iteration 0 (which evaluates the start)")
    seed: int = Field(0, description="seed of every sampling stream, training and held-out split of the run")
    batch_size: int = Field(64, ge=1, description="trees searched in lockstep per batch")
    task: TaskSettings = TaskSettings()
    policy: PolicySettings = PolicySettings()
    tiny: TinyRecipe = TinyRecipe()
    value: ValueBootstrap = ValueBootstrap()
    search: MCTSAlphaConfig = MCTSAlphaConfig()
    bfs_v: BFSVConfig = BFSVConfig()
    training_search: TrainingSearch = TrainingSearch()
    calculator: bool = Field(False, description="guided searches score a state whose steps write a false "
                                                "equation (a op b = c) at the lowest value, not asking the value")
    evaluation: EvaluationSettings = EvaluationSettings()
    sft: SFTSettings = SFTSettings()
    mix_demos: int | None = Field(
        None, ge=0, description="demonstrations mixed into each iteration's SFT: the tiny recipe's (default "
                                "2000), or for a given policy the task's reference solutions (GSM8K rationales, "
                                "MATH solutions) in its prompt and step format (default 0)")
    sft_filter: TraceFilter = TraceFilter()
    sft_init: Literal["previous", "base"] = Field(
        "previous", description="fine-tune the previous iteration's policy, or the base policy each time "
                                "(ReST-EM's choice) on this iteration's correct traces")
    value_targets: Literal["monte_carlo", "math_shepherd_soft", "math_shepherd_hard", "td_lambda", "rest_mcts"] = \
        Field("monte_carlo", description="the per-step targets the value model trains on (storage.datasets)")
    value_td_lambda: float = Field(0.9, ge=0.0, le=1.0, description="lambda of the td_lambda targets")
    value_holdout: float = Field(0.1, ge=0.0, lt=1.0, description="fraction of trees held out of value "
                                                                 "training to measure its MSE and step AUC")
    value_training: ValueSettings = ValueSettings(epochs=1.0, max_steps=150)
    value_model: Literal["head", "confidence"] = Field(
        "head", description="head: a scalar head on the backbone, trained by `value_training`; confidence: the "
                            "LM's per-step log-probabilities weighed by a logistic fit on the same targets "
                            "(models/confidence.py; `value_training` unused)")
    orm: ORMSettings = ORMSettings()
    rest_em: RestEMSettings = RestEMSettings()
    generation: GenerationSettings = GenerationSettings()
    training: TrainingPlacement = TrainingPlacement()
    registry: RegistrySettings = RegistrySettings()

    @model_validator(mode="before")
    @classmethod
    def _demos_default(cls, data):
        if isinstance(data, dict) and data.get("mix_demos") is None:
            policy = data.get("policy")
            path = policy.get("path") if isinstance(policy, dict) else getattr(policy, "path", None)
            data = {**data, "mix_demos": 2000 if path is None else 0}
        return data

    @model_validator(mode="after")
    def _tiny_policy_knows_the_task(self) -> FlywheelConfig:
        mismatch = self.task.name != self.tiny.task_name and "countdown" in (self.task.name, self.tiny.task_name)
        if self.policy.path is None and mismatch:
            raise ValueError(f"task.name: the built-in tiny policy is bootstrapped on {self.tiny.task_name}, "
                             f"not {self.task.name} (make tiny.countdown and task.name agree, or set policy.path)")
        return self

    @model_validator(mode="after")
    def _gate_is_evaluated(self) -> FlywheelConfig:
        method = self.registry.gate_metric.partition("/")[0]
        later = self.evaluation.later_methods or self.evaluation.methods
        if self.registry.enabled and self.iterations > 0 and method not in later:
            raise ValueError(f"registry.gate_metric: method '{method}' is not evaluated after iteration 0 "
                             f"(evaluation.later_methods: {', '.join(later)})")
        return self

    def test_size(self, method: str) -> int:
        """How many test problems `method` is evaluated on."""
        return self.evaluation.test_sizes.get(method, self.task.test_size)

    @property
    def paths(self) -> dict[str, Path]:
        root = Path(self.workdir)
        return {"root": root, "store": root / "traces.duckdb", "models": root / "models",
                "shards": root / "shards", "mlflow": root / "mlflow.db", "artifacts": root / "mlartifacts",
                "cache": Path(self.cache_dir) if self.cache_dir else root / "cache"}


def default_config_path() -> Path:
    """The built-in configuration, the CPU testbed's recipe (configs/testbed.yaml): what `treeflow demo` runs, and
    every command given no --config. Found beside the package, else under the working directory (an image that
    installs treeflow and keeps the repository's configs/ there)."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (path := root / "configs" / "testbed.yaml").is_file():
            return path
    raise ConfigError("configs/testbed.yaml: the built-in configuration is not beside treeflow or in the working "
                      "directory; give --config")


def load_config(path: str | Path, overrides: dict | None = None) -> FlywheelConfig:
    """Read and validate a YAML config; any problem raises `ConfigError` naming the file and key. `overrides`
    replace settings, a dotted key one nested setting (`{"sft.epochs": 3}` keeps the file's other SFT settings)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split(".")
        node = data
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{path}: cannot set '{key}': '{'.'.join(parents[:i + 1])}' is not a mapping")
        node[leaf] = value
    try:
        return FlywheelConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path}: " + "; ".join(_describe(err) for err in e.errors())) from None


def parse_overrides(items: list[str]) -> dict:
    """`KEY=VALUE` strings (a command line's `--set sft.epochs=3`) as `load_config` overrides; VALUE is YAML."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. sft.epochs=3")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not YAML ({e})") from None
    return out


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown key '{where}'"
    return f"'{where}': {err['msg']}"


def method_configs(config: FlywheelConfig) -> dict:
    """Each evaluated method's search configuration (budget unset: the caller sets it per budget)."""
    from search import METHODS

    base = {"mcts_alpha": config.search, "bfs_v": config.bfs_v}
    out = {}
    for name, (_, cls) in METHODS.items():
        start = base.get(name) or cls()
        if "n" in {f.name for f in dataclasses.fields(cls)} and name not in ("beam_prm", "dvts"):
            start = dataclasses.replace(start, n=config.evaluation.max_samples)
        if name != "greedy" and "max_depth" in {f.name for f in dataclasses.fields(cls)}:
            start = dataclasses.replace(start, max_depth=config.search.max_depth)
        out[name] = dataclasses.replace(start, **config.evaluation.settings.get(name, {}))
    out["greedy"] = dataclasses.replace(out["greedy"], n=1, temperature=0.0, max_depth=config.search.max_depth)
    return out


#: `treeflow report`: the budgets compared, and what --quick changes in the testbed configuration
FULL_BUDGETS, QUICK_BUDGETS = [200, 400, 800, 1600], [200, 800]
QUICK = {"iterations": 1, "task": {"train_per_iteration": 64, "test_size": 40}, "value": {"problems": 128},
         "value_training": {"max_steps": 50}, "mix_demos": 1000, "registry": {"enabled": False},
         "evaluation": {"test_sizes": {}}}


def report_config(path: str | None, workdir: str | None, quick: bool) -> FlywheelConfig:
    """The report's configuration: `path` (default: the testbed's, in work/report), smaller with `quick`;
    `workdir` overrides the file's."""
    if path is None:
        path, workdir = default_config_path(), workdir or "work/report"
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    config = load_config(path, {"workdir": workdir} if workdir else {})
    if not quick:
        return config
    data = config.model_dump()
    for key, value in QUICK.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return FlywheelConfig.model_validate(data)
