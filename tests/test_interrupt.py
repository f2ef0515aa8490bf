"""An interrupt that Python swallows inside a destructor (an uproot file closed by the garbage collector while
the signal arrives) still ends the run as interrupted: one line, rc 130, not a finished run and a traceback."""
from __future__ import annotations

import sys

import pytest


class _ClosedByTheCollector:
    """Stands for an object whose ``__del__`` runs when the signal arrives: the interrupt is raised there."""

    def __del__(self):
        raise KeyboardInterrupt("signal 2")


def _lose_an_interrupt() -> None:
    _ClosedByTheCollector()  # collected at once: Python cannot propagate the KeyboardInterrupt of its __del__


class InterruptedInChunk:
    """A processor that loses an interrupt in a destructor during the ``at``-th chunk of this process (counted on
    the class: coffea's Runner works on copies of the processor)."""

    calls = 0

    def __init__(self, at: int):
        from processors.jets import JetResponseProcessor

        self.inner, self.at = JetResponseProcessor(), at
        InterruptedInChunk.calls = 0

    def process(self, events):
        InterruptedInChunk.calls += 1
        if InterruptedInChunk.calls == self.at:
            _lose_an_interrupt()
        return self.inner.process(events)

    def postprocess(self, accumulator):
        return self.inner.postprocess(accumulator)


@pytest.fixture
def hook(monkeypatch):
    from core import interrupt

    printed = []
    monkeypatch.setattr(sys, "unraisablehook", interrupt.lost_interrupt_hook(printed.append))
    interrupt.clear()
    yield printed
    interrupt.clear()


def test_a_swallowed_interrupt_is_kept_and_other_unraisables_still_printed(hook):
    from core import interrupt

    interrupt.raise_if_interrupted()  # nothing recorded: nothing raised
    _lose_an_interrupt()
    assert hook == []  # not printed as "Exception ignored in ..."
    with pytest.raises(KeyboardInterrupt):
        interrupt.raise_if_interrupted()

    class Fails:
        def __del__(self):
            raise ValueError("another problem")

    Fails()
    assert len(hook) == 1 and isinstance(hook[0].exc_value, ValueError)


def test_run_lost_interrupt_ends_at_the_next_chunk(hook, shared_data, tmp_path):
    from coffea import processor

    from execution.runner import RunInterrupted, run_processor

    # coffea's Runner wants a ProcessorABC; register the wrapper as one (its two methods are what it calls)
    processor.ProcessorABC.register(InterruptedInChunk)
    proc = InterruptedInChunk(at=2)
    fileset = {"dy": {"files": {str(shared_data / "cms" / "nano_dy.root"): "Events"}}}
    with pytest.raises(RunInterrupted, match=r"interrupted after \d+ of (\d+) chunks; rerun with the same") as err:
        run_processor(fileset, proc, executor="iterative", workers=1, chunksize=10, status=False,
                      checkpoint=tmp_path / "ckpt")
    total = int(err.value.args[0].split(" of ")[1].split()[0])
    assert InterruptedInChunk.calls == 2 < total  # stopped before the third chunk, not after the last
