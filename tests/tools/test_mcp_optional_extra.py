"""Without the ``mcp`` extra, paraloom (and the MCP/HTTP config models) still import,
and the MCP adapters fail with an ImportError naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCK_MCP = """
import importlib.abc, sys

class BlockMCP(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mcp" or name.startswith(("mcp.", "mcp_types")):
            raise ImportError(f"No module named {name!r} (blocked for the test)")
        return None

sys.meta_path.insert(0, BlockMCP())
import paraloom, paraloom.tools, paraloom.tools.http, paraloom.tools.openapi
from paraloom.tools.mcp_config import MCPServerConfig
MCPServerConfig(name="x", command="node")
assert not any(m == "mcp" or m.startswith("mcp.") for m in sys.modules), "mcp was imported"
for module in ("paraloom.tools.mcp_client", "paraloom.tools.mcp_server"):
    try:
        __import__(module)
    except ImportError as exc:
        print(module, "->", exc)
    else:
        raise SystemExit(f"{module} imported without mcp")
"""


def test_mcp_is_optional() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_MCP],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert 'pip install "paraloom[mcp]"' in line
