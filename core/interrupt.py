"""A Ctrl-C or SIGTERM that Python had to swallow is kept, so the run still ends as interrupted.

The signal handler raises KeyboardInterrupt wherever the main thread is; when that is a ``__del__``
(an uproot file closed by the garbage collector, between chunks) Python cannot propagate it: it
prints "Exception ignored in ..." with a traceback and goes on, and the run would finish as if never
interrupted. ``lost_interrupt_hook`` (installed by ``runner.py``) records such an interrupt instead of
printing it, and ``raise_if_interrupted`` raises it again at the next safe point (the next chunk, the
end of the run).
"""
from __future__ import annotations

import sys

_lost = False


def clear() -> None:
    """Forget a recorded interrupt (a new command starts)."""
    global _lost
    _lost = False


def raise_if_interrupted() -> None:
    """KeyboardInterrupt when an interrupt was swallowed since ``clear``."""
    if _lost:
        raise KeyboardInterrupt("interrupted during clean-up")


def lost_interrupt_hook(previous=sys.__unraisablehook__):
    """A ``sys.unraisablehook`` that records a swallowed KeyboardInterrupt and hands anything else to ``previous``."""
    def hook(unraisable) -> None:
        global _lost
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _lost = True
            return
        previous(unraisable)

    return hook
