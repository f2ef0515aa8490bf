"""The one error type a user sees as a single line (no traceback)."""
from __future__ import annotations


class BadInputError(RuntimeError):
    """A file, model, config or argument that cannot be used; the message names it."""
