"""Output folders: one writer at a time, a record of what flexseg wrote, staged replacement.

Every command that writes into a folder opens it with :func:`open_output`, which

- takes the folder's lock (``.flexseg.lock``, an ``flock``: the kernel releases it when the
  process dies, so a lock left by a killed process is simply taken over); a second flexseg
  process is refused at once with the holder's pid and command;
- cleans what a killed earlier run left (flexseg's own temporary names only) and says so;
- records, in ``.flexseg-written`` (one relative path a line, appended before each file is
  written), every file flexseg writes there. ``--force`` removes only recorded files, and a
  file that exists but is not recorded is never overwritten.

A result that replaces an earlier one is written into a staging folder inside the output
(``.flexseg-staging``) and promoted when whole (:func:`promote`): first the new files are
marked complete, then the old recorded files go and the new ones are renamed in. A kill at
any point leaves the old result, or a complete staging folder that the next open rolls
forward: old or new, never half, never neither.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from flexseg import console as out
from flexseg import fsutil
from flexseg.errors import RunError

if TYPE_CHECKING:
    from collections.abc import Callable

LOCK_FILE = ".flexseg.lock"
RECORD_FILE = ".flexseg-written"
STAGING_DIR = ".flexseg-staging"
COMPLETE_MARK = ".flexseg-complete"  # in a staging folder: the new result is whole, promote it
OWN_FILES = (LOCK_FILE, RECORD_FILE)

# temporary names flexseg's writers use: atomic_path's ".<stem>.<random>.tmp<suffix>", resume's
# ".partial-<name>", split's ".<name>.partial-*" / ".<name>.old-*", export's ".export-*"
# (mkstemp's random part is 8 characters of [a-z0-9_]; the patterns are that narrow on purpose)
_TEMPORARY = re.compile(
    r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^.]+)?$|^\.partial-epoch_\d+\.(weights\.h5|variables)$"
    r"|^\..+\.(partial|old)-[a-z0-9_]{8}$|^\.export-[a-z0-9_]{8}$"
)


def is_temporary_name(name: str) -> bool:
    return bool(_TEMPORARY.search(name))


# ---------------------------------------------------------------- the record


class WrittenRecord:
    """The files flexseg wrote in one folder, as paths relative to it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / RECORD_FILE
        self.names: set[str] = set()
        self._lock = threading.Lock()  # writers in several threads record into one file
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line and not line.startswith("/") and ".." not in Path(line).parts:  # a torn last line is skipped
                    self.names.add(line)

    def __contains__(self, rel: str) -> bool:
        return rel in self.names

    def add(self, rel: str) -> None:
        """Record ``rel`` before it is written, so a kill never leaves an unrecorded file."""
        with self._lock:
            if rel in self.names or rel in OWN_FILES:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(rel + "\n")
            self.names.add(rel)

    def add_tree(self, below: Path) -> None:
        """Record ``below``, a file, or every file under it (written by a library that does not go
        through fsutil)."""
        for path in [below] if below.is_file() else sorted(below.rglob("*")):
            if path.is_file():
                self.add(path.relative_to(self.folder).as_posix())

    def existing(self) -> list[str]:
        return sorted(n for n in self.names if (self.folder / n).is_file())

    def rewrite(self, names: set[str]) -> None:
        self.names = set(names)
        fsutil.atomic_write_text(self.path, "".join(f"{n}\n" for n in sorted(self.names)), record=False)


def _prune_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# ---------------------------------------------------------------- recording hook for fsutil

_open: list["OutputFolder"] = []


def _record_write(path: Path) -> None:
    """Called by fsutil before it writes ``path``: record it in the innermost open output folder
    that holds it, and refuse to overwrite a file there that flexseg did not write."""
    path = Path(os.path.abspath(path))
    owner = max((f for f in _open if path.is_relative_to(f.folder)), key=lambda f: len(f.folder.parts), default=None)
    if owner is None:
        return
    rel = path.relative_to(owner.folder).as_posix()
    if rel in OWN_FILES:
        return
    if path.exists() and rel not in owner.record and not owner.legacy(rel):
        raise RunError(
            f"{path} exists and was not written by flexseg; it is never overwritten. "
            "Move it away or write somewhere else"
        )
    owner.record.add(rel)


fsutil.before_write = _record_write


# ---------------------------------------------------------------- locks


def _describe_holder(lock_path: Path) -> str:
    try:
        holder = json.loads(lock_path.read_text(encoding="utf-8"))
        return (
            f"flexseg {holder.get('command', '?')} (pid {holder.get('pid', '?')}, since {holder.get('started', '?')})"
        )
    except (OSError, ValueError):
        return "another flexseg process"


@contextlib.contextmanager
def folder_lock(folder: Path, lock_path: Path | None = None, command: str = "") -> Iterator[None]:
    """Hold ``folder``'s lock; a second holder is refused at once, naming the first."""
    lock_path = lock_path or folder / LOCK_FILE
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, fsutil.public_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{folder} is in use by {_describe_holder(lock_path)}; wait for it to finish, or write somewhere else"
            ) from None
        os.ftruncate(fd, 0)
        os.write(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "command": command or " ".join(sys.argv[1:2]),
                    "argv": sys.argv,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            ).encode(),
        )
        yield
    finally:
        os.close(fd)  # releases the flock; the file stays (unlinking it would race with a waiting process)


# ---------------------------------------------------------------- output folders


@dataclass
class OutputFolder:
    folder: Path
    record: WrittenRecord
    legacy_names: tuple[str, ...] = ()  # treated as flexseg's in folders written before the record existed
    finished_interrupted: bool = False  # an earlier run's complete result was put in place on opening

    def legacy(self, rel: str) -> bool:
        return not self.record.path.exists() and rel.split("/")[0] in self.legacy_names

    def staging(self) -> Path:
        return self.folder / STAGING_DIR


@contextlib.contextmanager
def open_output(
    folder: Path, command: str, *, legacy_names: tuple[str, ...] = (), lock_path: Path | None = None
) -> Iterator[OutputFolder]:
    """Lock ``folder`` for ``command``, finish or clean what a killed run left, and record every
    flexseg write into it until the block ends."""
    folder = Path(os.path.abspath(folder))
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{folder}: a file stands where a folder is needed; choose another path")
    with folder_lock(folder, lock_path, command):
        handle = OutputFolder(folder, WrittenRecord(folder), legacy_names)
        _finish_interrupted(handle)
        _open.append(handle)
        try:
            yield handle
        finally:
            _open.remove(handle)


def _finish_interrupted(handle: OutputFolder) -> None:
    staging = handle.staging()
    if (staging / COMPLETE_MARK).exists():
        out.warn(
            f"{handle.folder}: an earlier flexseg run was stopped while putting its new result in place; "
            "finishing that now"
        )
        _roll_forward(staging, handle.folder)
        handle.record = WrittenRecord(handle.folder)
        handle.finished_interrupted = True
    cleaned = clean_leftovers(handle.folder)
    if cleaned:
        out.warn(
            f"{handle.folder}: removed {len(cleaned)} temporary file(s) an interrupted flexseg run left "
            f"(e.g. {cleaned[0]})"
        )


def clean_leftovers(folder: Path, prefix: str = "", recursive: bool = True) -> list[str]:
    """Delete flexseg's temporary files and folders below ``folder`` (only names of its own
    temporary patterns, starting with ``prefix``); call with the folder's lock held."""
    cleaned: list[str] = []
    if not folder.is_dir():
        return cleaned
    for root, dirs, files in os.walk(folder):
        if not recursive and Path(root) != folder:
            break
        for name in [*dirs, *files]:
            if name.startswith(prefix) and is_temporary_name(name):
                path = Path(root) / name
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                cleaned.append(str(path.relative_to(folder)))
        dirs[:] = [d for d in dirs if not is_temporary_name(d) and d != STAGING_DIR]
    return cleaned


def discard_staging(handle: OutputFolder) -> bool:
    """Remove an incomplete staging folder (a new result that was never finished)."""
    staging = handle.staging()
    if staging.exists():
        shutil.rmtree(staging)
        out.warn(f"{handle.folder}: removed the unfinished result an interrupted flexseg run left in {STAGING_DIR}")
        return True
    return False


@contextlib.contextmanager
def staged(
    handle: OutputFolder, fresh: bool = True, keep_on_failure: Callable[[], bool] = lambda: False
) -> Iterator[Path]:
    """A staging folder inside the output (emptied first when ``fresh``), recorded as its own output
    folder. The caller promotes it when the new result is whole; on failure it is removed unless
    ``keep_on_failure()`` says it can be continued, and the old result stays as it was."""
    staging = handle.staging()
    if fresh:
        discard_staging(handle)
    staging.mkdir(parents=True, exist_ok=True)
    inner = OutputFolder(staging, WrittenRecord(staging))
    _open.append(inner)
    ok = False
    try:
        yield staging
        ok = True
    finally:
        _open.remove(inner)
        if not ok and staging.exists() and not (staging / COMPLETE_MARK).exists() and not keep_on_failure():
            shutil.rmtree(staging)


def adopt(folder: Path, below: Path) -> None:
    """Record every file under ``below`` in ``folder``'s record (for libraries that write files themselves)."""
    WrittenRecord(folder).add_tree(below)


def promote(handle: OutputFolder, replace: set[str] | None = None) -> None:
    """Put the staging folder's files in place of the folder's recorded ones (all of them, or those
    under the top-level names ``replace``): mark complete, then roll forward."""
    staging = handle.staging()
    foreign = [
        rel
        for rel in WrittenRecord(staging).names
        if (handle.folder / rel).exists() and rel not in handle.record and not handle.legacy(rel)
    ]
    if foreign:
        raise RunError(
            f"{handle.folder / foreign[0]} exists and was not written by flexseg; it is never "
            "overwritten. Move it away or write somewhere else (the new result stays in "
            f"{staging.name} until then)"
        )
    fsutil.atomic_write_text(
        staging / COMPLETE_MARK, json.dumps({"replace": sorted(replace) if replace is not None else None}), record=False
    )
    _roll_forward(staging, handle.folder)
    handle.record = WrittenRecord(handle.folder)


def _roll_forward(staging: Path, target: Path) -> None:
    """Idempotent: may run again after a kill at any point of it."""
    mark = json.loads((staging / COMPLETE_MARK).read_text(encoding="utf-8") or "{}")
    new = WrittenRecord(staging).names
    record = WrittenRecord(target)
    replace = mark.get("replace")
    old = record.names if replace is None else {n for n in record.names if n.split("/")[0] in replace}
    record.rewrite(record.names | new)  # first: everything that may stand in the folder is recorded
    for rel in sorted(old - new):
        path = target / rel
        if path.is_file() or path.is_symlink():
            path.unlink()
        _prune_empty_parents(path.parent, target)
    for rel in sorted(new):
        source = staging / rel
        if source.exists():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target / rel)
    record.rewrite({n for n in (record.names - old) | new if (target / n).exists()})
    shutil.rmtree(staging)


# ---------------------------------------------------------------- inputs

# what a run folder written before the record existed holds of flexseg's (the files directly in
# it, and the folders only flexseg writes into); a user's export/, evaluate/, tensorboard/ are not here
RUN_LEGACY_NAMES = (
    "model.keras",
    "model.json",
    "experiment.yaml",
    "environment.json",
    "train_metrics.csv",
    "train_losses.csv",
    "train_metrics.png",
    "train_losses.png",
    "evaluation.csv",
    "evaluation.json",
    "per_image.csv",
    "resume",
    "epoch_change_infer",
)


def refuse_inputs(output: Path, inputs: list[tuple[str, Path]], option: str) -> None:
    """Never write into an input: refuse an output that is, or is inside, one of ``inputs``
    ((label, folder or file) pairs), whatever --force says."""
    output = Path(os.path.realpath(output))
    for label, source in inputs:
        folder = Path(os.path.realpath(source))
        folder = folder if folder.is_dir() else folder.parent
        if output == folder or output.is_relative_to(folder):
            raise RunError(
                f"{option} {output} is inside the input {label} {folder}; flexseg never writes into its "
                f"inputs. Choose another {option}"
            )
