"""Names of augmented copies: copy ``c`` of ``stem`` is ``<stem>__augCC``, and ``augment.json`` in a
split folder records how its copies were made. Split, stats and augment read them the same way."""

from __future__ import annotations

import re
from pathlib import Path

AUGMENT_RECORD = "augment.json"
AUGMENTED = re.compile(r"^(?P<source>.+)__aug(?P<copy>\d+)$")  # stem of an augmented copy


def augmented_name(stem: str, copy: int) -> str:
    return f"{stem}__aug{copy:02d}"


def source_stem(stem: str) -> str | None:
    """The stem an augmented copy was made from, or None for an original."""
    m = AUGMENTED.match(stem)
    return m.group("source") if m else None


def existing_copies(split_dir: Path) -> list[Path]:
    return sorted(
        p
        for kind in ("images", "masks")
        if (split_dir / kind).is_dir()
        for p in (split_dir / kind).iterdir()
        if source_stem(p.stem) is not None
    )
