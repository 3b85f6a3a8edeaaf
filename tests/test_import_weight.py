"""Start-up weight: every CLI command pays for what `import paraloom` and the CLI app
import, so the heavy optional pieces (scikit-learn/SciPy for router training, Ray, MCP,
Phoenix, OpenTelemetry exporters, matplotlib) are imported only by the code that uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import run_cli_in_probe

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data_pipeline.yaml"


def python(code: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (nothing imported yet), output captured."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=check
    )


HEAVY = ("sklearn", "scipy", "ray", "mcp", "phoenix", "matplotlib", "opentelemetry.exporter")


@pytest.mark.parametrize("module", ["paraloom", "paraloom.cli", "paraloom.routing"])
def test_import_does_not_load_heavy_modules(module: str) -> None:
    code = (
        "import sys\n"
        f"import {module}\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
        "for h in heavy))\n"
        "print(','.join(loaded))\n"
    )
    done = python(code)
    assert done.stdout.strip() == "", f"import {module} loaded: {done.stdout.strip()}"


def test_router_training_still_imports_sklearn_when_it_fits() -> None:
    code = (
        "import sys, numpy as np\n"
        "from paraloom.routing.linear import LogisticRouter\n"
        "assert 'sklearn' not in sys.modules\n"
        "r = LogisticRouter()\n"
        "q, b = r._fit_quality(np.eye(4), np.array([1.0, 0.0, 1.0, 0.5]), 4)\n"
        "assert 'sklearn' in sys.modules and q.shape == (4,)\n"
    )
    done = python(code, check=False)
    assert done.returncode == 0, done.stderr


def test_import_paraloom_loads_no_jsonschema_numpy_networkx_or_httpx() -> None:
    """jsonschema (plan, tool-call and output checks), numpy (routing), networkx (naming
    a plan's cycle) and httpx (model and HTTP tool calls; importing it loads rich
    through its CLI) are imported by the code that uses them, on first use."""
    lazy = ("jsonschema", "numpy", "networkx", "httpx", "rich")
    code = (
        f"import sys\nimport paraloom\nprint(','.join(m for m in {lazy!r} if m in sys.modules))\n"
    )
    done = python(code)
    assert done.stdout.strip() == "", f"import paraloom loaded: {done.stdout.strip()}"


def test_plan_validation_still_checks_arguments_with_jsonschema() -> None:
    code = (
        "import sys\n"
        "from paraloom import ActionSet, Plan, PlanValidationError, Subtask, tool\n"
        "from paraloom import validate_plan\n"
        "@tool\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "plan = Plan(subtasks=(Subtask(id='x', action='add', arguments={'a': 'one', 'b': 2}),))\n"
        "try:\n"
        "    validate_plan(plan, ActionSet([add]))\n"
        "except PlanValidationError as exc:\n"
        "    print(exc.problems[0])\n"
        "print('jsonschema' in sys.modules)\n"
    )
    done = python(code)
    assert done.stdout.splitlines() == [
        "subtask 'x': argument a: 'one' is not of type 'integer'",
        "True",
    ]


def test_cli_import_loads_no_networkx() -> None:
    """The CLI's graph, build order and config checks import networkx when they run."""
    code = "import sys\nimport paraloom.cli\nprint('networkx' in sys.modules)\n"
    done = python(code)
    assert done.stdout.strip() == "False"


def loaded_of(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The top-level packages among ``names`` that ``modules`` includes (or a submodule of)."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


ANALYTICS = ("sklearn", "scipy", "numpy", "networkx", "ray", "mcp", "phoenix", "matplotlib")
"""Imported only by the commands and routers that use them."""


def test_import_paraloom_imports_no_dependency_at_all() -> None:
    """``import paraloom`` imports its public names on first use: none of its
    dependencies (pydantic included) until a name is used."""
    deps = (*ANALYTICS, "opentelemetry", "rich", "httpx", "jsonschema", "typer", "yaml")
    code = "import json, sys\nimport paraloom\nprint(json.dumps(sorted(sys.modules)))\n"
    modules = set(json.loads(python(code).stdout))
    assert loaded_of(modules, (*deps, "pydantic")) == []
    assert sorted(m for m in modules if m.startswith("paraloom")) == ["paraloom", "paraloom._lazy"]


def test_a_public_name_that_is_also_a_module_name_stays_the_name() -> None:
    """``paraloom.tracing.setup`` is the function even after its module was imported
    directly (the lazy package keeps the name, as eager imports left it)."""
    code = (
        "from paraloom.tracing.setup import reachable\n"
        "import paraloom.tracing as t\n"
        "from paraloom.tracing import setup\n"
        "from paraloom.runtime import redact\n"
        "print(callable(t.setup), type(setup).__name__, type(redact).__name__)\n"
    )
    assert python(code).stdout.split() == ["True", "function", "function"]


@pytest.mark.timeout(300)
def test_help_imports_typer_and_rich_only() -> None:
    """``paraloom --help`` imports no pydantic and no part of paraloom's API."""
    text, modules = run_cli_in_probe("--help", cwd=EXAMPLE.parent)
    assert "validate" in text
    deps = (*ANALYTICS, "opentelemetry", "httpx", "jsonschema", "yaml", "anyio", "pydantic")
    assert loaded_of(modules, deps) == []
    api = ("agents", "config.build", "config.load", "models", "orchestrator", "store", "tools")
    assert loaded_of(modules, tuple(f"paraloom.{a}" for a in api)) == []


@pytest.mark.timeout(300)
def test_run_with_a_store_imports_no_analytics_tracing_or_jsonschema(tmp_path: Path) -> None:
    """A run of the data pipeline, recorded in a store: config checks and plan
    validation without networkx or jsonschema, the store without the routers' NumPy,
    no OpenTelemetry SDK without --trace."""
    store = tmp_path / "runs.sqlite"
    text, modules = run_cli_in_probe(
        "run", str(EXAMPLE), "--json", "--store", str(store), cwd=tmp_path
    )
    assert '"status": "ok"' in text and store.is_file()
    otel_sdk = ("opentelemetry.sdk", "opentelemetry.exporter")
    assert loaded_of(modules, (*ANALYTICS, *otel_sdk, "jsonschema")) == []
