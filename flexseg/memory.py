"""How much memory one input may take: checked from what a file says it holds, before it is read.

A 36 MB gzipped NIfTI can claim a gigavoxel of float64; reading it would take the process down
(the kernel's OOM killer gives no message). So before a volume is read, flexseg estimates the
bytes it will hold for it (``volumes.working_bytes``) and refuses, with exit 3 and the figures,
what does not fit in the budget: by default half of this machine's memory (or of the memory
limit of the container it runs in), or ``$FLEXSEG_MEMORY_BUDGET`` (``12G``, ``800M``, bytes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from flexseg.errors import ConfigError, DataError

BUDGET_ENV = "FLEXSEG_MEMORY_BUDGET"
DEFAULT_SHARE = 0.5  # of the machine's (or container's) memory
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


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
        return int(machine_memory() * DEFAULT_SHARE)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"${BUDGET_ENV}={text[:40]!r}: a size such as 12G, 800M or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def check_fits(path: Path, needed: int, what: str) -> None:
    """Refuse ``path`` (exit 3) when reading it would take more than the budget."""
    budget = memory_budget()
    if needed > budget:
        raise DataError(
            f"{path}: {what} would take about {needed / 2**30:.1f} GiB of memory to read, over the budget of "
            f"{budget / 2**30:.1f} GiB; not read. Crop or downsample it, or raise ${BUDGET_ENV} (e.g. "
            f"{BUDGET_ENV}={max(1, round(needed / 2**30 + 0.5))}G) on a machine that has the memory"
        )
