"""YAML → pydantic → live objects.

``load_config`` reads (and merges) files into a validated :class:`ParaloomConfig`,
locating every problem by file, line and column; ``open_project`` builds what one
workflow needs (model pool, tools, agents, workflows, router); ``project_workflow``
projects a run's cost, tokens and latency without calling anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.config.build import (
        Needs,
        Project,
        choose_workflow,
        endpoint_problem,
        merge_input,
        model_descriptors,
        needs_of,
        open_project,
    )
    from paraloom.config.errors import ConfigError, ConfigProblem, Mark
    from paraloom.config.graph import workflow_graph
    from paraloom.config.load import LoadedConfig, load_config
    from paraloom.config.projection import (
        ASSUMPTIONS,
        ProjectedScope,
        ProjectedStep,
        Projection,
        project_workflow,
    )
    from paraloom.config.schema import (
        AgentConfig,
        BudgetConfig,
        ModelConfig,
        ParaloomConfig,
        RouterConfig,
        ToolConfig,
        WorkflowConfig,
        config_json_schema,
    )
    from paraloom.config.selector import PerAgentSelector, build_router
    from paraloom.config.source import MissingEnv

# Imported on first use: the CLI reads errors and loads files without building (and
# importing) what ``open_project`` needs.
lazy_package(
    __name__,
    {
        "build": (
            "Needs",
            "Project",
            "choose_workflow",
            "endpoint_problem",
            "merge_input",
            "model_descriptors",
            "needs_of",
            "open_project",
        ),
        "errors": ("ConfigError", "ConfigProblem", "Mark"),
        "graph": ("workflow_graph",),
        "load": ("LoadedConfig", "load_config"),
        "projection": (
            "ASSUMPTIONS",
            "ProjectedScope",
            "ProjectedStep",
            "ProjectedScope",
            "Projection",
            "project_workflow",
        ),
        "schema": (
            "AgentConfig",
            "BudgetConfig",
            "ModelConfig",
            "ParaloomConfig",
            "RouterConfig",
            "ToolConfig",
            "WorkflowConfig",
            "config_json_schema",
        ),
        "selector": ("PerAgentSelector", "build_router"),
        "source": ("MissingEnv",),
    },
)

__all__ = [
    "ASSUMPTIONS",
    "AgentConfig",
    "BudgetConfig",
    "ConfigError",
    "ConfigProblem",
    "LoadedConfig",
    "Mark",
    "MissingEnv",
    "ModelConfig",
    "Needs",
    "ParaloomConfig",
    "PerAgentSelector",
    "Project",
    "ProjectedScope",
    "ProjectedStep",
    "Projection",
    "RouterConfig",
    "ToolConfig",
    "WorkflowConfig",
    "build_router",
    "choose_workflow",
    "config_json_schema",
    "endpoint_problem",
    "load_config",
    "merge_input",
    "model_descriptors",
    "needs_of",
    "open_project",
    "project_workflow",
    "workflow_graph",
]
