"""core.memory.keep_freed_memory: glibc's malloc keeps freed memory in this process (once), and can be turned off."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = "import core.memory as m; print(m.keep_freed_memory(), m.keep_freed_memory())"


def _run(env_value: str | None) -> list[str]:
    """Both calls' results in a fresh process (the setting is per process)."""
    env = {k: v for k, v in os.environ.items() if k != "CALIBER_KEEP_FREED_MEMORY"}
    if env_value is not None:
        env["CALIBER_KEEP_FREED_MEMORY"] = env_value
    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, check=True,
                          cwd=ROOT).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_applied_once_on_glibc_and_off_by_environment():
    assert _run(None) == ["True", "True"]  # applied; the second call reports the first one's result
    assert _run("0") == ["False", "False"]
