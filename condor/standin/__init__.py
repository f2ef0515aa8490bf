"""The local stand-in HTCondor pool (``condor_submit``, ``condor_q``, ``condor_rm``); see pool.py."""
from __future__ import annotations

from pathlib import Path

#: the directory to put first on PATH to use the stand-in pool
BIN_DIR = Path(__file__).resolve().parent / "bin"
