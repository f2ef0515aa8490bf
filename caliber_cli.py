"""Console entry point ``caliber``: the same commands as ``runner.py``."""
from runner import main

__all__ = ["main"]
