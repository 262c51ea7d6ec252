"""Settings read from the environment and shared defaults: the one place that knows them.

- ``FLEXSEG_WORKERS``: threads that read and write files in split, augment, stats and the audit
  before training; default the CPUs this process may run on (``os.sched_getaffinity``: a
  container's or ``taskset``'s limit, not the machine's count).
"""

from __future__ import annotations

import os

WORKERS_ENV = "FLEXSEG_WORKERS"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def workers() -> int:
    """Threads for file work: $FLEXSEG_WORKERS, else ``usable_cpus()``."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    if not text:
        return usable_cpus()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        from flexseg.errors import ConfigError

        raise ConfigError(f"${WORKERS_ENV}={text[:40]!r}: a whole number of threads, at least 1, e.g. 4")
    return value
