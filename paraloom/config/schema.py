"""The paraloom file format as pydantic models (``paraloom schema`` prints its JSON Schema).

::

    models:                       # the pool (OpenAI-compatible endpoints)
      small: {model_id: gpt-4o-mini, input_price_per_m: 0.15, output_price_per_m: 0.6}
      large: {model_id: gpt-4o, max_concurrency: 4}   # ≤ 4 requests in flight, all runs
    cascades:                     # optional: composite pool models (agreement escalation)
      - {name: quick, probes: [small, tiny], escalate: large}
    router: {kind: cheapest}      # optional: picks a model per LLM call
    budget: 0.50                  # dollars per run (or {usd, max_tokens, max_calls})
    executor: {kind: ray, num_cpus: 4}   # optional: python tools as Ray tasks
    tools:
      load_rows: {python: "pipeline_tools:load_rows"}
      weather: {http: {method: GET, url: "https://api.example.com/w/{city}", ...}}
      files: {mcp: {command: npx, args: [...]}}
    agents:
      writer: {instructions: "...", model: small, actions: [load_rows]}
    workflows:
      main: {subtasks: [{id: a, action: load_rows, arguments: {...}}, ...]}
      research: {planner: llm, model: small, actions: [writer, ...], max_rounds: 4}

Names of tools, agents and workflows share one namespace: they are the actions.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    field_validator,
    model_validator,
)

from paraloom.config.executor import ExecutorConfig
from paraloom.protocols.plan import FailurePolicy, Subtask
from paraloom.runtime.scopes import validate_scope_key
from paraloom.tools.http_config import HttpToolConfig
from paraloom.tools.mcp_config import MCPServerConfig

__all__ = [
    "AgentConfig",
    "BudgetConfig",
    "CascadeConfig",
    "ExecutorConfig",
    "ModelConfig",
    "ParaloomConfig",
    "RouterConfig",
    "StoreConfig",
    "ToolConfig",
    "TracingConfig",
    "WorkflowConfig",
    "config_json_schema",
]

_Strict = ConfigDict(extra="forbid", defer_build=True)
_PYTHON_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


class ModelConfig(BaseModel):
    """One model of the pool, served by an OpenAI-compatible endpoint."""

    model_config = _Strict

    provider: Literal["openai"] = Field(
        default="openai", description="'openai' means any OpenAI-compatible endpoint."
    )
    model_id: str | None = Field(
        default=None, description="The provider's model name (default: the pool name)."
    )
    base_url: str | None = Field(
        default=None,
        description="Endpoint base URL, e.g. http://localhost:8000/v1 "
        "(default: $OPENAI_BASE_URL, else https://api.openai.com/v1).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key; write ${env:NAME} to read it from the environment "
        "(default: $OPENAI_API_KEY).",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Extra HTTP headers sent with every request (e.g. Azure's 'api-key'); "
        "${env:NAME} reads a value from the environment. Values are credentials: they "
        "are scrubbed from errors, traces, the store and exports.",
    )
    input_price_per_m: Decimal = Field(
        default=Decimal(0), ge=0, description="$ per 1M input tokens."
    )
    output_price_per_m: Decimal = Field(
        default=Decimal(0), ge=0, description="$ per 1M output tokens."
    )
    cached_input_price_per_m: Decimal | None = Field(
        default=None,
        ge=0,
        description="$ per 1M cached (prompt-cache read) input tokens (default: the input price).",
    )
    cache_write_price_per_m: Decimal | None = Field(
        default=None,
        ge=0,
        description="$ per 1M input tokens written to the prompt cache (default: the input price).",
    )
    context_window: int = Field(default=8192, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    tokenizer_bytes_per_token: Decimal | None = Field(
        default=None,
        ge=1,
        description="Opt-in: you vouch that this model's tokenizer makes at most one token "
        "per this many UTF-8 bytes of your prompts (e.g. 2 for English-only traffic). "
        "Budgets then reserve fewer input tokens; default: one token per byte, the true "
        "bound. A provider reporting more is flagged as a usage_anomaly.",
    )
    latency_s: float | None = Field(
        default=None, ge=0, description="Typical seconds per call (used by --dry-run)."
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Time limit of one HTTP attempt.")
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="At most this many requests to this model in flight at once, shared by "
        "every run, agent and cascade of the loaded configuration (waits between retries "
        "hold no slot). Default: no limit.",
    )
    rpm: int | None = Field(
        default=None,
        ge=1,
        description="The provider's requests-per-minute limit: requests wait for it instead "
        "of collecting 429s (shared by every run and cascade of the configuration).",
    )
    tpm: int | None = Field(
        default=None,
        ge=1,
        description="The provider's tokens-per-minute limit (a request counts its input "
        "bound plus max_tokens).",
    )
    tool_mode: Literal["native", "json"] = Field(
        default="native",
        description="How agents ask this model for tool calls: 'native' (OpenAI `tools`) or "
        "'json' (JSON-schema constrained output, for models without tool support in their "
        "chat template, e.g. many small local models).",
    )
    description: str = ""
    stream: bool | None = Field(
        default=None,
        description="Stream replies (SSE): true always, false never; default: only when "
        "someone listens to LLM deltas (paraloom run --events jsonl, the live view).",
    )


class CascadeConfig(BaseModel):
    """A composite pool model: its ``probes`` answer in parallel; when their answers agree
    the first probe's is kept, otherwise ``escalate`` is called and its answer kept.
    Priced at the sum of its members' prices (the exact worst case)."""

    model_config = _Strict

    name: str | None = Field(
        default=None,
        min_length=1,
        description="Pool name (default: 'cascade(p1+p2>e)', the name routers give it).",
    )
    probes: list[str] = Field(
        min_length=2, description="Pool models asked in parallel (at least two)."
    )
    escalate: str = Field(description="Pool model called when the probes disagree.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.escalate in self.probes:
            raise ValueError(f"the escalation model {self.escalate!r} cannot also be a probe")
        return self

    @property
    def pool_name(self) -> str:
        if self.name is not None:
            return self.name
        from paraloom.models.cascade import cascade_name  # the model clients: when used

        return cascade_name(self.probes, self.escalate)


class RouterConfig(BaseModel):
    """Which router picks the model of each routed LLM call."""

    model_config = _Strict

    kind: Literal["fixed", "cheapest", "random", "trained"] = Field(
        description="fixed: always `model`; cheapest: lowest list price; random: uniform "
        "(seeded); trained: a router saved by `paraloom router train` (`path`)."
    )
    model: str | None = Field(default=None, description="The model of a `fixed` router.")
    path: str | None = Field(
        default=None,
        description="Directory of a `trained` router (relative paths: from this file).",
    )
    knob: float | None = Field(
        default=None, description="Quality/cost trade-off (λ or α) overriding the router's."
    )
    pacing: Literal["none", "share", "reserve"] | None = Field(
        default=None,
        description="How the budget left is shared over expected steps (default: share, or "
        "what a trained router was saved with).",
    )
    exploration: Literal["epsilon", "softmax"] | None = Field(
        default=None, description="Explore (to collect trajectories for training)."
    )
    epsilon: float = Field(default=0.1, ge=0, le=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.kind == "fixed" and not self.model:
            raise ValueError("a 'fixed' router needs 'model'")
        if self.kind == "trained" and not self.path:
            raise ValueError("a 'trained' router needs 'path' (saved by `paraloom router train`)")
        if self.kind != "trained" and self.path:
            raise ValueError("'path' is for kind 'trained'")
        return self


class BudgetConfig(BaseModel):
    """Limits shared by every LLM call of one run. A bare number means ``usd``."""

    model_config = _Strict

    usd: Decimal | None = Field(default=None, ge=0, description="Dollars per run.")
    max_tokens: int | None = Field(default=None, gt=0)
    max_calls: int | None = Field(default=None, gt=0)
    on_abandoned: Literal["bill_worst_case", "release"] = Field(
        default="bill_worst_case",
        description="A request the client abandoned (timeout, cancellation) may still be "
        "billed: bill_worst_case keeps its reserved worst case as spent; release frees it "
        "(only for providers that do not bill abandoned requests).",
    )
    scopes: list[str] = Field(
        default_factory=list,
        description="Ledger scopes enclosing every run (e.g. [tenant:acme]): each call's "
        "reservation must fit each of them too, shared by every process using the ledger "
        "(--ledger / $PARALOOM_LEDGER). Limits are set with 'paraloom budget set'.",
    )

    @field_validator("scopes")
    @classmethod
    def _scope_keys(cls, value: list[str]) -> list[str]:
        return [validate_scope_key(k) for k in value]


class StoreConfig(BaseModel):
    """How the CLI records runs in the run store."""

    model_config = _Strict

    redact: bool = Field(
        default=False,
        description="Scrub every recorded event with the redactor (secret shapes and "
        "secret-named keys in inputs, outputs and messages, besides the configured "
        "credentials that are never stored).",
    )
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL",
        description="SQLite synchronous mode of the store (WAL). NORMAL: a committed "
        "result survives the process being killed, not an OS crash or power loss; FULL: "
        "an fsync per commit, so it survives those too (slower).",
    )


class TracingConfig(BaseModel):
    """Tracing options of the CLI (the target is chosen with --trace)."""

    model_config = _Strict

    capture_content: bool | None = Field(
        default=None,
        description="Record inputs, outputs and LLM messages in spans (default: "
        "$OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, else off). Secrets are "
        "scrubbed either way.",
    )


class ToolConfig(BaseModel):
    """Exactly one of ``python``, ``http`` or ``mcp``."""

    model_config = _Strict

    python: str | None = Field(
        default=None,
        description="'module:function'; modules beside the YAML file are found too.",
    )
    http: HttpToolConfig | None = None
    mcp: MCPServerConfig | None = Field(
        default=None, description="An MCP server: every tool it lists becomes an action."
    )
    description: str | None = Field(
        default=None, description="Overrides the function's docstring (python tools)."
    )
    timeout_s: float | None = Field(default=None, gt=0, description="Per-call time limit.")
    retries: int = Field(
        default=0, ge=0, le=10, description="Retries on retryable errors (python tools)."
    )
    isolation: Literal["thread", "process"] = Field(
        default="thread",
        description="python tools: 'thread' (a daemon thread, abandoned when a call times "
        "out) or 'process' (a child process per call, killed when it times out).",
    )
    approval: Literal["required", "none"] = Field(
        default="none",
        description="'required': every call waits for a person's approval (see "
        "'paraloom approve').",
    )

    @field_validator("python")
    @classmethod
    def _module_function(cls, value: str | None) -> str | None:
        if value is not None and not _PYTHON_REF.match(value):
            raise ValueError(
                f"expected 'module:function' (e.g. 'my_tools:load_rows'), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("python", "http", "mcp") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a tool needs exactly one of 'python', 'http' or 'mcp'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.isolation == "process" and self.python is None:
            raise ValueError("'isolation: process' is for python tools")
        return self

    @property
    def kind(self) -> Literal["python", "http", "mcp"]:
        if self.python is not None:
            return "python"
        return "http" if self.http is not None else "mcp"


class AgentConfig(BaseModel):
    """An LLM agent: a tool-calling loop over the actions it may call."""

    model_config = _Strict

    instructions: str = Field(min_length=1, description="The agent's system prompt.")
    description: str = Field(
        default="", description="What planners and other agents are told it does."
    )
    model: str | None = Field(default=None, description="Pool model it always uses.")
    router: bool = Field(
        default=False, description="Let the run's router pick the model of every turn."
    )
    actions: list[str] = Field(
        default_factory=list, description="Tools, agents and workflows it may call."
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema its final answer must match."
    )
    max_turns: int = Field(default=8, ge=1, le=100)
    answer_on_last_turn: bool = Field(
        default=False,
        description="Offer no tools on the last turn, so the model must answer there instead "
        "of the agent failing with max_turns (helps small models that repeat tool calls).",
    )
    max_tokens: int = Field(default=1024, ge=1, description="Output tokens per turn.")
    max_corrections: int = Field(default=2, ge=0, le=10)
    temperature: float | None = Field(default=None, ge=0, le=2)
    approval: Literal["required", "none"] = Field(
        default="none",
        description="'required': every call waits for a person's approval (see "
        "'paraloom approve').",
    )


class WorkflowConfig(BaseModel):
    """A static DAG (``subtasks``) or an LLM planner (``planner: llm``) over ``actions``."""

    model_config = _Strict

    description: str = ""
    planner: Literal["static", "llm"] = "static"
    subtasks: list[Subtask] = Field(
        default_factory=list,
        description='Static DAG. Arguments may hold {"from": "<id>.output.path"} or '
        '{"from": "input.x"} references.',
    )
    output: JsonValue = Field(
        default=None,
        description="Static: the final answer (references allowed); default: the sink(s).",
    )
    actions: list[str] = Field(default_factory=list, description="LLM planner: its catalogue.")
    model: str | None = Field(default=None, description="LLM planner: its pool model.")
    router: bool = Field(default=False, description="LLM planner: route each round.")
    guidance: str = Field(default="", description="LLM planner: extra instructions.")
    policy: FailurePolicy | None = Field(
        default=None,
        description="Default failure policy of its subtasks (retries, timeout_s, fallback, "
        "on_failure: fail | skip_dependents | continue).",
    )
    max_rounds: int = Field(default=8, ge=1, le=100)
    max_concurrency: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Subtask attempts in flight at once, over every concurrent run of this "
        "workflow (a nested workflow has its own limit).",
    )
    action_limits: dict[str, Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=dict,
        description="Attempts of one action in flight at once, over every concurrent run "
        "of this workflow, e.g. {search: 2}.",
    )
    input: dict[str, JsonValue] = Field(
        default_factory=dict, description="Default input values (overridden by --input)."
    )
    budget_usd: Decimal | None = Field(default=None, ge=0, description="Overrides `budget`.")
    approval: Literal["required", "none"] = Field(
        default="none",
        description="'required': every call waits for a person's approval (see "
        "'paraloom approve').",
    )
    approval_timeout_s: float | None = Field(
        default=None, gt=0, description="How long an approval of its subtasks may wait."
    )
    approve_plans: bool = Field(
        default=False,
        description="Each plan waits for approval, shown with its projected cost, before any "
        "of its subtasks runs; a rejection's reason goes back to the planner.",
    )
    on_approval_timeout: Literal["reject", "fail", "skip"] = Field(
        default="reject",
        description="An unanswered approval after approval_timeout_s: reject (skip it and "
        "its dependents), fail (stop the run) or skip (its dependents still run).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.planner == "static":
            if not self.subtasks:
                raise ValueError(
                    "a static workflow needs 'subtasks' (or write 'planner: llm' with 'actions')"
                )
            for key in ("actions", "model", "guidance"):
                if getattr(self, key):
                    raise ValueError(f"{key!r} is for 'planner: llm' workflows")
        else:
            if self.subtasks:
                raise ValueError("'subtasks' are for static workflows, not 'planner: llm'")
            if not self.actions:
                raise ValueError("an LLM-planned workflow needs 'actions' it may schedule")
            if self.model is None and not self.router:
                raise ValueError(
                    "an LLM-planned workflow needs 'model: <pool model>' or 'router: true'"
                )
        return self


class ParaloomConfig(BaseModel):
    """A paraloom file (several files merge into one of these)."""

    model_config = ConfigDict(extra="forbid", title="paraloom configuration", defer_build=True)

    version: Literal[1] = 1
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    cascades: list[CascadeConfig] = Field(
        default_factory=list,
        description="Composite pool models built from `models:` (usable wherever a pool "
        "model name is).",
    )
    router: RouterConfig | None = None
    budget: BudgetConfig | None = None
    store: StoreConfig = Field(default_factory=StoreConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    executor: ExecutorConfig = Field(
        default_factory=ExecutorConfig,
        description="Where actions run: local (default) or ray (python tools as Ray tasks).",
    )
    tools: dict[str, ToolConfig] = Field(default_factory=dict)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    workflows: dict[str, WorkflowConfig] = Field(default_factory=dict)

    @field_validator("budget", mode="before")
    @classmethod
    def _bare_budget(cls, value: Any) -> Any:
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            return {"usd": value}
        return value

    @model_validator(mode="before")
    @classmethod
    def _name_tools(cls, data: Any) -> Any:
        """``tools.<name>.http`` / ``.mcp`` take their name from the key unless given."""
        if isinstance(data, dict) and isinstance(data.get("tools"), dict):
            for name, entry in data["tools"].items():
                if not isinstance(entry, dict):
                    continue
                for kind in ("http", "mcp"):
                    sub = entry.get(kind)
                    if isinstance(sub, dict) and "name" not in sub:
                        sub["name"] = name
        return data

    def pool_names(self) -> list[str]:
        """Every pool model name: ``models:`` then ``cascades:``."""
        return [*self.models, *(c.pool_name for c in self.cascades)]

    def cascade(self, name: str) -> CascadeConfig | None:
        """The cascade whose pool name is ``name``, if any."""
        return next((c for c in self.cascades if c.pool_name == name), None)

    def action_kinds(self) -> dict[str, str]:
        """Every action name → 'tool', 'agent' or 'workflow'."""
        out: dict[str, str] = {}
        out.update({n: "tool" for n in self.tools})
        out.update({n: "agent" for n in self.agents})
        out.update({n: "workflow" for n in self.workflows})
        return out


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the file format, for editors."""
    schema = copy.deepcopy(ParaloomConfig.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    for name, definition in schema.get("$defs", {}).items():
        if name in ("HttpToolConfig", "MCPServerConfig") and "required" in definition:
            # the name comes from the `tools:` key
            definition["required"] = [r for r in definition["required"] if r != "name"]
            if not definition["required"]:
                del definition["required"]
    budget = schema["properties"]["budget"]
    budget["anyOf"] = [{"type": "number", "minimum": 0}, *budget.get("anyOf", [])]
    return schema
