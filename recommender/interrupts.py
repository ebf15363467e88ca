"""Ctrl-C and SIGTERM as a stop request that cannot be lost.

A signal handler's exception can be dropped: CPython prints "Exception ignored in ..." and goes on
when it is raised while a weakref callback or a ``__del__`` runs. A Ctrl-C that landed in
``WeakKeyDictionary``'s callback during a training step was lost that way, and the search trained
on. Within :func:`handled` the request is recorded as well as raised, and long loops call
:func:`check` at safe points (every training step, every message from a trial process, every
trial), which raises a request that was dropped.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from recommender.errors import SearchInterrupted

_pending: KeyboardInterrupt | None = None


def check() -> None:
    """Raise the stop request recorded by :func:`handled`, if any (cheap enough for every step)."""
    if _pending is not None:
        raise _pending


@contextmanager
def handled() -> Iterator[None]:
    """Within: SIGTERM raises :class:`~recommender.errors.SearchInterrupted` ("terminated
    (SIGTERM)") and Ctrl-C ``KeyboardInterrupt``, each also recorded for :func:`check`; a dropped
    one is not printed as "Exception ignored". A SIGINT ignored when the command started (a
    background or ``nohup`` job, as a shell starts them) stays ignored. Main thread only; the
    previous handlers and hook are restored and the request cleared on the way out."""
    global _pending

    def on_signal(signum: int, frame: Any) -> None:
        global _pending
        _pending = SearchInterrupted("terminated (SIGTERM)") if signum == signal.SIGTERM else KeyboardInterrupt()
        raise _pending

    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if _pending is None or info.exc_value is not _pending:
            previous_hook(info)

    signums = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signums.append(signal.SIGINT)
    previous = {s: signal.signal(s, on_signal) for s in signums}
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        _pending = None
