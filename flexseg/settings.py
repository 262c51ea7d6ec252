"""Settings read from the environment: the one module that reads them.

- ``FLEXSEG_WORKERS``: threads that read and write files in split, augment, stats and the audit
  before training; default the CPUs this process may run on (``os.sched_getaffinity``: a
  container's or ``taskset``'s limit, not the machine's count).
- ``FLEXSEG_MAX_PIXELS``: the largest image flexseg decodes (default 64 M pixels).
- ``FLEXSEG_MEMORY_BUDGET``: the memory one input may take (default half of this machine's or
  container's memory).
- ``FLEXSEG_MODEL``: the run ``infer`` uses when neither ``--model`` nor an experiment says.
- ``TF_CONFIG``: the cluster of a multi-worker training (``training.distribute`` parses it).
- ``MLFLOW_TRACKING_URI``: where ``train.track: mlflow`` logs when ``train.track_uri`` does not
  say; ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT``: MLflow's own, set
  to 0 retries and 10 s when tracking starts unless given (``flexseg.tracking``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

WORKERS_ENV = "FLEXSEG_WORKERS"
MAX_PIXELS_ENV = "FLEXSEG_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 64_000_000  # 8000×8000: about 1.5 GB at the peak of infer --tiles with 2 classes
BUDGET_ENV = "FLEXSEG_MEMORY_BUDGET"
DEFAULT_MEMORY_SHARE = 0.5  # of the machine's (or container's) memory
MODEL_ENV = "FLEXSEG_MODEL"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


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


def max_pixels() -> int:
    """The largest image (width × height) flexseg decodes; $FLEXSEG_MAX_PIXELS changes it. A PNG of a few
    hundred KB can hold 400 M pixels (7 GB decoded): the size is checked from the header first."""
    text = os.environ.get(MAX_PIXELS_ENV, "")
    try:
        value = int(text) if text.strip() else DEFAULT_MAX_PIXELS
    except ValueError:
        value = 0
    if value <= 0:
        from flexseg.errors import ConfigError

        raise ConfigError(f"${MAX_PIXELS_ENV}={text[:40]!r}: a positive whole number of pixels, e.g. 100000000")
    return value


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def memory_budget() -> int:
    """Bytes one input may take: $FLEXSEG_MEMORY_BUDGET, else half of ``machine_memory()``."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return int(machine_memory() * DEFAULT_MEMORY_SHARE)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
    if match is None or float(match.group(1)) <= 0:
        from flexseg.errors import ConfigError

        raise ConfigError(f"${BUDGET_ENV}={text[:40]!r}: a size such as 12G, 800M or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def default_model() -> Path | None:
    """$FLEXSEG_MODEL as a path, None when unset."""
    text = os.environ.get(MODEL_ENV, "")
    return Path(text) if text else None


def tf_config_text() -> str:
    """$TF_CONFIG as written (empty when unset)."""
    return os.environ.get("TF_CONFIG", "").strip()


def mlflow_tracking_uri() -> str | None:
    """$MLFLOW_TRACKING_URI, or None."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def quiet_mlflow_http() -> None:
    """No MLflow HTTP retries with back-off (minutes against a server that is down) and a 10 s
    timeout, unless the user set them: a tracker must never hold a training up."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
