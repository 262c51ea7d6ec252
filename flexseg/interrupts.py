"""Ctrl-C (SIGINT) and SIGTERM: stop cleanly, at a point where stopping is safe.

Outside training a signal raises :class:`Interrupted` at once. While a model is being fitted
the handler only notes it, and :class:`StopAtStepBoundary` (a Keras callback) raises it after
the step in progress, so the exception never starts inside TensorFlow's input threads (which
is what left processes hung or aborting). A second signal while the first waits raises at once.

Both are installed whatever the parent set: a job started in the background of a script
inherits SIGINT as ignored, and ``kill -INT`` then did nothing at all.
"""

from __future__ import annotations

import contextlib
import signal
from typing import TYPE_CHECKING, Iterator

from flexseg.errors import Interrupted

if TYPE_CHECKING:
    from types import FrameType

_deferring = False
_pending: int | None = None


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _deferring and _pending is None:
        _pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


def raise_if_pending() -> None:
    global _pending
    if _pending is not None:
        signum, _pending = _pending, None
        raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block a signal waits for :func:`raise_if_pending`; a pending one is raised on leaving."""
    global _deferring
    previous, _deferring = _deferring, True
    try:
        yield
    finally:
        _deferring = previous
    raise_if_pending()
