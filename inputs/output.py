"""Output files of ``runner.py run``: reading them back (writing lives with the run command)."""
from __future__ import annotations

from pathlib import Path

from core.errors import BadInputError


def load_output(path: str | Path) -> dict:
    """The accumulated output of ``runner.py run`` (clear error for a bad file)."""
    from coffea.util import load

    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: output file does not exist")
    try:
        out = load(str(path))
    except Exception as err:
        raise BadInputError(f"{path}: not a caliber output file ({type(err).__name__}: {err})") from None
    if not isinstance(out, dict):
        raise BadInputError(f"{path}: not a caliber output file (holds {type(out).__name__})")
    return out
