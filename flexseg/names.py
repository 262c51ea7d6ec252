"""Names taken from data become file names here, and only here.

A DICOM SeriesInstanceUID, a file's stem, anything read from an input is data, not a path: it may
hold ``/``, ``..``, line breaks, bytes that are not UTF-8, or be 255 bytes long. ``safe_filename``
turns it into one path component that

- holds no separator, no control or line-break character, no byte that is not UTF-8;
- is not empty, ``.`` or ``..``, and does not start with a dot (flexseg's temporary names do);
- fits in ``MAX_NAME_BYTES`` with its suffix, leaving room for a temporary or ``__augNN`` suffix
  under the file systems' 255-byte limit (a shortened name keeps a hash of the original, so two
  long names that differ only at the end stay apart).

``unique_filenames`` resolves the collisions this can make (and the ones inputs make themselves,
``a.png`` and ``a.jpg``) by numbering, and says which names changed.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata

MAX_NAME_BYTES = 200  # of NAME_MAX 255: room for ".<name>.<8>.tmp<suffix>" and "__augNN"
_UNSAFE_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn")  # controls, format, surrogates, line/para separators


def _clean(text: str) -> str:
    """Undecodable bytes (surrogate escapes from os.listdir), separators and control characters → '_'."""
    text = os.fsencode(text).decode("utf-8", errors="replace")
    chars = [
        "_" if ch in "/\\\ufffd" or unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch
        for ch in unicodedata.normalize("NFC", text)
    ]
    return "".join(chars)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


def safe_filename(stem: str, suffix: str = "") -> str:
    """One safe path component ``<stem><suffix>`` (see the module's rules); ``suffix`` is flexseg's
    own (``.png``, ``.nii.gz``) and kept as it is."""
    original = stem
    stem = _clean(stem).strip()
    if stem in ("", ".", "..") or stem.startswith("."):
        stem = "_" + stem
    room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    if len(stem.encode("utf-8")) > room:
        digest = hashlib.sha256(os.fsencode(original)).hexdigest()[:8]
        stem = f"{_cut(stem, room - 9)}~{digest}"
    return stem + suffix


def unique_filenames(wanted: list[tuple[str, str]]) -> tuple[list[str], list[tuple[int, str, str]]]:
    """Safe, distinct file names for (stem, suffix) pairs in input order: a name met again gets
    ``~2``, ``~3``… before its suffix (the first keeps its name). Returns the names, and
    (index, safe name, name given) for each input whose name had to change."""
    taken: set[str] = set()
    names, renamed = [], []
    for i, (stem, suffix) in enumerate(wanted):
        name = candidate = safe_filename(stem, suffix)
        k = 1
        while candidate in taken:
            k += 1
            candidate = safe_filename(f"{name[: -len(suffix) or None]}~{k}", suffix)
        taken.add(candidate)
        names.append(candidate)
        if candidate != name:
            renamed.append((i, name, candidate))
    return names, renamed


def describe_renamed(renamed: list[tuple[int, str, str]], inputs: list[str], limit: int = 3) -> str:
    """One line on the outputs that were numbered to stay apart: the count and the first few,
    each with the input it belongs to."""
    shown = "; ".join(
        f"{inputs[i]} gets {given} ({wanted} is taken by another input)" for i, wanted, given in renamed[:limit]
    )
    more = f" and {len(renamed) - limit} more" if len(renamed) > limit else ""
    return f"{len(renamed)} output name(s) numbered to keep inputs apart: {shown}{more}"
