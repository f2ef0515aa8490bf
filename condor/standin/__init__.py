"""The local stand-in HTCondor pool (``condor_submit``, ``condor_q``, ``condor_rm``); see pool.py.

state.py keeps the job table, submit.py reads submit descriptions and queues jobs, pool.py
runs them (the shepherd), removes them and holds the command lines that bin/ calls.
"""
from __future__ import annotations

from pathlib import Path

#: the directory to put first on PATH to use the stand-in pool
BIN_DIR = Path(__file__).resolve().parent / "bin"
