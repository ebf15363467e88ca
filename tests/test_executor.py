"""Trial processes started ahead of their trial: the spare waits with its imports done, a search
that ends takes it down, and a spare that is never needed exits on an empty stdin."""

from __future__ import annotations

import time


def test_a_spare_trial_process_waits_for_the_next_trial_and_is_released(trial_processes):
    from recommender.search import executor

    try:
        first = executor._take_trial_process()
        spare = executor._spare
        assert spare is not None and spare.pid != first.pid and spare.poll() is None
        assert {first.pid, spare.pid} <= {p.pid for p in trial_processes()}
        # the spare does its imports, then waits: it is still alive seconds later
        time.sleep(3)
        assert spare.poll() is None
        assert first.stdin is not None
        first.stdin.close()  # no job: a process whose search ended before it was needed exits cleanly
        assert first.wait(timeout=120) == 0
        second = executor._take_trial_process()
        assert second.pid == spare.pid  # the next trial gets the warm one
        executor._kill(second)
    finally:
        executor.release_spare()
    assert executor._spare is None
    deadline = time.time() + 10
    while trial_processes() and time.time() < deadline:
        time.sleep(0.2)
    assert not trial_processes()
