"""Hostile and mistaken input: exit code 2, a message located at file:line:col or naming
the option, never a traceback, and bounded memory and time.

The YAML cases run in one ``paraloom validate`` subprocess (each file is checked on its
own) under an address-space limit and a timeout: an alias bomb or a deep nesting that
escaped the bounds would die of MemoryError or RecursionError (exit 1, a traceback) or
run into the timeout."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paraloom.cli import EXIT_BAD_INPUT, app

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = str(ROOT / "examples" / "data_pipeline.yaml")
MEMORY_LIMIT = 1 << 30  # bytes of address space for the CLI process (it needs ~0.5 GiB)


def alias_bomb() -> str:
    """342 bytes that stand for 9**9 values (the "billion laughs")."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def merge_bomb() -> str:
    """The same through merge keys: each level merges nine copies of the one before."""
    lines = ["a: &a {k0: 1, k1: 2}"]
    for prev, name in zip("abcdefghijklmn", "bcdefghijklmno", strict=True):
        lines.append(f"{name}: &{name} {{<<: [" + ",".join([f"*{prev}"] * 9) + f"], {name}: 1}}")
    return "\n".join(lines) + "\n"


def block_nesting(depth: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + f"{'  ' * depth}v\n"


def many_aliases() -> str:
    return "a: &a 1\nb: [" + ", ".join(["*a"] * 10_001) + "]\n"


# (case, file text, expected message with {f} for the file name)
YAML_CASES: list[tuple[str, str, str]] = [
    (
        "alias-bomb",
        alias_bomb(),
        "{f}:6:8: alias *e expands past the limit of 100,000 values repeated through aliases "
        "(an alias bomb?)",
    ),
    (
        "merge-key-bomb",
        merge_bomb(),
        "{f}:6:13: alias *e expands past the limit of 100,000 values repeated through aliases",
    ),
    ("flow-nesting-1000", "workflows: " + "[" * 1000 + "]" * 1000 + "\n", "{f}:1:75: nested more"),
    ("flow-nesting-100", "workflows: " + "[" * 100 + "]" * 100 + "\n", "{f}:1:75: nested more"),
    ("block-nesting-900", block_nesting(900), "{f}:64:127: nested more than 64 levels deep"),
    ("recursive-alias", "a: &a\n  b: *a\n", "{f}:2:6: recursive alias: *a contains itself"),
    ("recursive-merge", "a: &a\n  <<: *a\n  x: 1\n", "{f}:2:7: recursive alias: *a contains"),
    ("too-many-aliases", many_aliases(), "{f}:2:40005: more than 10,000 aliases in one file"),
]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], str, int]:
    """Every YAML case validated by one CLI process: (files, its output, exit code)."""
    folder = tmp_path_factory.mktemp("bad_yaml")
    files = {}
    for case, text, _ in YAML_CASES:
        files[case] = folder / f"{case}.yaml"
        files[case].write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PARALOOM_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "paraloom.cli", "validate", *map(str, files.values())],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # the bounded cases take well under a second each once started
        preexec_fn=_limit_memory,
    )
    return files, proc.stdout + proc.stderr, proc.returncode


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("case", "expected"), [(c[0], c[2]) for c in YAML_CASES])
def test_hostile_yaml_is_refused_with_a_located_message(
    validated: tuple[dict[str, Path], str, int], case: str, expected: str
) -> None:
    files, output, code = validated
    assert code == EXIT_BAD_INPUT, output[-2000:]
    assert "Traceback" not in output and "RecursionError" not in output
    assert expected.format(f=files[case]) in " ".join(output.split())
    assert f"{len(YAML_CASES)} of {len(YAML_CASES)} files have problems" in output
    if "nesting" in case:
        assert "recursive alias" not in output.split(str(files[case]))[1].split("\n")[0]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., tuple[int, str]]:
    monkeypatch.chdir(tmp_path)  # the default store would be .paraloom/ here
    monkeypatch.delenv("PARALOOM_STORE", raising=False)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result.exit_code, result.stdout + result.stderr

    return run


OPTION_CASES: list[tuple[list[str], str]] = [
    (["run", PIPELINE, "--budget", "nan"], "--budget 'nan': must be a non-negative number"),
    (["run", PIPELINE, "--budget", "sNaN"], "--budget 'sNaN': must be a non-negative number"),
    (["run", PIPELINE, "--budget", "-inf"], "--budget '-inf': must be a non-negative number"),
    (
        ["run", PIPELINE, "--input", "top_m=5"],
        "--input: unknown input 'top_m' for workflow 'sales_report'; known inputs are path, top_n",
    ),
    (
        ["run", PIPELINE, "--input", "noequals", "--dry-run"],
        "--input \"noequals\": workflow 'sales_report' takes named inputs (path, top_n); "
        "write --input key=value",
    ),
    (["runs", "list", "--status", "bogus"], "--status 'bogus': expected one of budget_exhausted"),
    (
        ["runs", "list", "--store", "missing/x.sqlite"],
        "no run store at --store missing/x.sqlite",
    ),
    (["runs", "show", "run_x"], "no run store at .paraloom/runs.sqlite (the default store)"),
    (["resume", "run_x", "--store", "gone.sqlite"], "no run store at --store gone.sqlite"),
]


@pytest.mark.parametrize(("args", "expected"), OPTION_CASES)
def test_bad_options_exit_2_naming_the_option(
    invoke: Callable[..., tuple[int, str]], tmp_path: Path, args: list[str], expected: str
) -> None:
    code, output = invoke(*args)
    assert code == EXIT_BAD_INPUT, output
    assert expected in " ".join(output.split())
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []  # no store (nor its folder) was created


def test_read_only_commands_create_nothing(
    invoke: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    code, output = invoke("runs", "list")
    assert (code, output.strip()) == (0, "no runs recorded yet")
    assert list(tmp_path.iterdir()) == []


def test_validate_checks_each_file_on_its_own(
    invoke: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    """Two valid files naming the same model are fine one by one; ``--merge`` reads
    them as one configuration (as ``run`` does), where the name clashes."""
    model = "models:\n  small: {model_id: m, input_price_per_m: 1, output_price_per_m: 2}\n"
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for f, name in ((a, "first"), (b, "second")):
        f.write_text(
            model + f"agents:\n  {name}_agent: {{model: small, instructions: hi}}\n"
            f"workflows:\n  {name}:\n    planner: llm\n    model: small\n"
            f"    actions: [{name}_agent]\n",
            encoding="utf-8",
        )
    code, output = invoke("validate", str(a), str(b))
    assert code == 0, output
    assert f"ok {a}:" in output and f"ok {b}:" in output
    code, output = invoke("validate", str(a), str(b), "--merge")
    assert code == EXIT_BAD_INPUT
    assert f"{b}:2:3: model 'small' is defined twice (also at {a}:2:3)" in output
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflows: [\n", encoding="utf-8")
    code, output = invoke("validate", str(a), str(bad))
    assert code == EXIT_BAD_INPUT
    assert f"ok {a}:" in output and f"{bad}:2:1: invalid YAML" in output
    assert "1 of 2 files have problems" in output
