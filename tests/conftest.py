"""Shared pytest fixtures for caliber."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

#: real CMS files live beside the project (a user's clone does not have them)
SHARED_DATA = Path(os.environ.get("CALIBER_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; the test is skipped with a reason when it is absent."""
    if not (SHARED_DATA / "cms").is_dir():
        pytest.skip(f"real CMS files not found at {SHARED_DATA} (set CALIBER_SHARED_DATA); "
                    "they exist only beside the project's CI checkout")
    return SHARED_DATA


def default_sigint() -> None:
    """``preexec_fn`` for subprocesses that a test interrupts: a shell that started pytest in the background
    leaves SIGINT ignored, and the child would inherit that (it then never sees a Ctrl-C)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
