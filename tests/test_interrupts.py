"""A Ctrl-C or SIGTERM that CPython drops (raised while a weakref callback runs) is not lost: it is
recorded, raised again at the next check, and the training it meant to stop stops there."""

from __future__ import annotations

import gc
import os
import signal
import weakref

import pytest

from recommender import interrupts
from recommender.errors import SearchInterrupted


class _Object:
    pass


def _signal_inside_a_weakref_callback(signum: int) -> None:
    """Deliver ``signum`` to this process while a weakref callback runs: the handler's exception
    is raised inside the callback, where CPython can only report it as unraisable and go on."""
    reached = []

    def callback(ref: weakref.ref) -> None:
        os.kill(os.getpid(), signum)
        reached.append("after")  # the handler runs first: its exception ends the callback here

    obj = _Object()
    ref = weakref.ref(obj, callback)
    del obj
    gc.collect()
    assert ref() is None and not reached


@pytest.mark.parametrize("signum,exc_type,message", [
    (signal.SIGINT, KeyboardInterrupt, ""),
    (signal.SIGTERM, SearchInterrupted, "terminated (SIGTERM)"),
])
def test_a_dropped_signal_is_raised_at_the_next_check_and_not_printed(ctrl_c_as_from_a_terminal, capsys,
                                                                      signum, exc_type, message):
    with interrupts.handled():
        _signal_inside_a_weakref_callback(signum)
        with pytest.raises(exc_type) as raised:
            interrupts.check()
        assert str(raised.value) == message
    interrupts.check()  # cleared on the way out: raises nothing
    assert "Exception ignored" not in capsys.readouterr().err


def test_handled_restores_the_handlers_and_leaves_an_ignored_ctrl_c_ignored():
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job
    try:
        previous_term = signal.getsignal(signal.SIGTERM)
        with interrupts.handled():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) != previous_term
        assert signal.getsignal(signal.SIGTERM) == previous_term
    finally:
        signal.signal(signal.SIGINT, previous_int)
    with interrupts.handled():
        pass
    assert signal.getsignal(signal.SIGINT) == previous_int


def test_training_stops_at_the_next_step_after_a_dropped_sigterm():
    from recommender.tasks import load_task
    from recommender.training import LatencyConfig, train
    from recommender.types import Budget

    task = load_task("glue_sst2").subsample(400, 32, seed=0)
    steps = []
    with interrupts.handled():
        with pytest.raises(SearchInterrupted, match="terminated"):
            train(task, "head_only", budget=Budget(max_epochs=20), latency=LatencyConfig(enabled=False),
                  on_step=lambda step, total: steps.append(step) or (
                      step == 3 and _signal_inside_a_weakref_callback(signal.SIGTERM)))
    assert steps == [1, 2, 3]  # not one step more: the fourth step's check raised it
