"""How much memory one input may take: checked from what a file says it holds, before it is read.

A 36 MB gzipped NIfTI can claim a gigavoxel of float64; reading it would take the process down
(the kernel's OOM killer gives no message). So before a volume is read, flexseg estimates the
bytes it will hold for it (``volumes.working_bytes``) and refuses, with exit 3 and the figures,
what does not fit in the budget: by default half of this machine's memory (or of the memory
limit of the container it runs in), or ``$FLEXSEG_MEMORY_BUDGET`` (``12G``, ``800M``, bytes).
"""

from __future__ import annotations

from pathlib import Path

from flexseg.errors import DataError
from flexseg.settings import BUDGET_ENV, memory_budget


def check_fits(path: Path, needed: int, what: str) -> None:
    """Refuse ``path`` (exit 3) when reading it would take more than the budget."""
    budget = memory_budget()
    if needed > budget:
        raise DataError(
            f"{path}: {what} would take about {needed / 2**30:.1f} GiB of memory to read, over the budget of "
            f"{budget / 2**30:.1f} GiB; not read. Crop or downsample it, or raise ${BUDGET_ENV} (e.g. "
            f"{BUDGET_ENV}={max(1, round(needed / 2**30 + 0.5))}G) on a machine that has the memory"
        )
