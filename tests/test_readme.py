"""The README is the user's guide: its Python examples run, in order, as written,
and CI's commands are the README's own (``.ci/run`` reads them from it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_examples_run_in_order(tmp_path):
    blocks = python_blocks()
    assert len(blocks) >= 8
    script = "\n\n".join(blocks)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOLOG_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "mlruns").is_dir()  # the default store, as documented
    assert (tmp_path / "mlflow.db").is_file()


def test_quickstart_script_matches_the_readme():
    quickstart = (ROOT / "examples" / "quickstart.py").read_text()
    first_block = python_blocks()[0]
    for line in first_block.strip().splitlines():
        assert line.split("#")[0].strip() in quickstart, line


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_command install" in ci and "readme_command test" in ci
    for marker in ("<!-- install -->", "<!-- test -->"):
        assert marker in README
