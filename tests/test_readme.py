"""The README's Python example runs and prints what it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"## 20 lines of Python\n\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its Python example"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 22
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    claimed = re.search(r'print\(result\.output\)\s+# "(.*)"', code)
    assert claimed
    assert out.stdout.strip() == claimed.group(1)
