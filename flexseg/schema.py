"""The JSON files flexseg writes and reads again, each with one schema (a pydantic model): one
writer (``to_json``) and one reader (``read_json``), which turns a damaged or foreign file into a
named error saying which file, what is wrong with it and what to do.

The schemas: ``model.json`` (``model.store.ModelCard``), ``split.json``
(``data.manifest.SplitManifest``), ``resume/state.json`` (``training.state.ResumeState``); the
experiment itself is ``config.Experiment``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flexseg.errors import FlexsegError

R = TypeVar("R", bound=BaseModel)
# JSON arrays of numbers of a fixed length (a window [centre, width], a spacing [row, column])
Pair = Annotated[list[float], Field(min_length=2, max_length=2)]
Triple = Annotated[list[float], Field(min_length=3, max_length=3)]


class Record(BaseModel):
    """A file's schema: unknown keys refused (a foreign file is not taken for one of ours), values
    of the JSON type the schema names (no "64" for 64)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def read_json(path: Path, schema: type[R], *, what: str, fix: str, error: type[FlexsegError]) -> R:
    """The file at ``path`` as ``schema``.

    Args:
        path: the file (FileNotFoundError propagates: a missing file means different things to callers).
        schema: its pydantic model.
        what: what the file is, for the message ("model description").
        fix: what the user can do about a bad one ("train again").
        error: the error type (its exit code): RunError for run files, DataError for data files.

    Raises:
        ``error``: ``<path>: not a valid <what> (<the first problems>); <fix>``.
    """
    try:
        # Python's parser: names that are not UTF-8 are written as lone surrogate escapes
        return schema.model_validate(json.loads(path.read_text(encoding="utf-8")), strict=True)
    except FileNotFoundError:
        raise
    except ValidationError as e:
        raise error(f"{path}: not a valid {what} ({describe(e)}); {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise error(f"{path}: not a readable {what} ({str(e)[:120]}); {fix}") from None


def describe(e: ValidationError, limit: int = 3) -> str:
    """The first ``limit`` problems of a validation error, each as ``where: what``."""
    parts = []
    for err in e.errors()[:limit]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "the file"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    more = len(e.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def to_json(record: BaseModel, indent: int = 1) -> str:
    """The text a schema's file holds (the one writer of each)."""
    return json.dumps(record.model_dump(mode="json"), indent=indent) + "\n"
