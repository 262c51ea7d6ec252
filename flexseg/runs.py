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
import errno
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
    """The files flexseg wrote in one folder, as paths relative to it.

    On disk: one JSON string a line (ASCII: a name's line breaks, ``\\r``, ``\\u2028`` and
    undecodable bytes are escaped, so no name can read as two). A record written before this
    format (one plain path a line) is still read. An entry is trusted only when it is a plain
    relative path inside the folder; the record file is never a link."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / RECORD_FILE
        self.names: set[str] = set()
        self._lock = threading.Lock()  # writers in several threads record into one file
        text = _read_own_file(self.path)
        lines = [line for line in text.split(b"\n") if line.strip()]
        self.older_format = any(not line.startswith(b'"') for line in lines)  # rewritten when the folder is opened
        for line in lines:
            rel = _decode_entry(line)
            if rel is not None:  # a torn last line, or an entry that leaves the folder, is skipped
                self.names.add(rel)

    def __contains__(self, rel: str) -> bool:
        return rel in self.names

    def add(self, rel: str) -> None:
        """Record ``rel`` before it is written, so a kill never leaves an unrecorded file."""
        with self._lock:
            if rel in self.names or rel in OWN_FILES:
                return
            if not is_plain_relative(rel):
                raise RunError(f"{self.folder}: flexseg will not write {rel!r}, a path that leaves the folder")
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = _open_own_file(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, _encode_entry(rel))
            finally:
                os.close(fd)
            self.names.add(rel)

    def add_tree(self, below: Path) -> None:
        """Record ``below``, a file, or every file under it (written by a library that does not go
        through fsutil)."""
        for path in [below] if below.is_file() else sorted(below.rglob("*")):
            if path.is_file():
                self.add(path.relative_to(self.folder).as_posix())

    def existing(self) -> list[str]:
        return sorted(n for n in self.names if (p := inside(self.folder, n)) is not None and p.is_file())

    def rewrite(self, names: set[str]) -> None:
        self.names = set(names)
        _refuse_link(self.path)  # before replacing it: os.replace would replace the link, not follow it
        with fsutil.atomic_path(self.path, record=False) as tmp:
            tmp.write_bytes(b"".join(_encode_entry(n) for n in sorted(self.names)))

    def remove(self, rel: str) -> bool:
        """Delete the recorded file ``rel`` (never through a link: a folder on its way that is a link
        means the file is not flexseg's). True when a file was deleted."""
        path = inside(self.folder, rel)
        if path is None or not (path.is_file() or path.is_symlink()):
            return False
        path.unlink()
        return True


def is_plain_relative(rel: str) -> bool:
    """``rel`` names something below a folder: relative, no ``..``, no empty part, no NUL."""
    parts = rel.split("/")
    return bool(rel) and "\0" not in rel and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def inside(folder: Path, rel: str) -> Path | None:
    """``folder / rel`` when ``rel`` is plain and no folder on the way below ``folder`` is a link;
    else None (the path leads elsewhere, so it is not what flexseg wrote)."""
    if not is_plain_relative(rel):
        return None
    path = folder
    for part in rel.split("/")[:-1]:
        path = path / part
        if path.is_symlink():
            return None
    return folder / rel


def _encode_entry(rel: str) -> bytes:
    return (json.dumps(rel, ensure_ascii=True) + "\n").encode("ascii")


def _decode_entry(line: bytes) -> str | None:
    line = line.strip(b"\r")
    if not line:
        return None
    try:
        rel = json.loads(line) if line.startswith(b'"') else line.decode("utf-8")  # older records: plain lines
    except ValueError:
        return None
    return rel if isinstance(rel, str) and is_plain_relative(rel) else None


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise RunError(
            f"{path} is a link, not the file flexseg keeps there; flexseg never follows it. Remove the link "
            "(the file it points to is left alone) and run again"
        )


def _open_own_file(path: Path, flags: int) -> int:
    """Open one of flexseg's own files (lock, record) without following a link: a link there was not
    made by flexseg, and following it would write into whatever it points at."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), fsutil.public_mode())
    except OSError as e:
        if e.errno == errno.ELOOP:
            _refuse_link(path)
        raise


def _read_own_file(path: Path) -> bytes:
    """The bytes of a lock or record file, b"" when there is none; refused when it is a link."""
    if not path.exists() and not path.is_symlink():
        return b""
    fd = _open_own_file(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


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
    if inside(owner.folder, rel) is None:
        raise RunError(f"{path}: a folder on the way is a link; flexseg never writes through a link it did not make")
    if path.exists() and rel not in owner.record and not owner.legacy(rel):
        raise RunError(
            f"{path} exists and was not written by flexseg; it is never overwritten. "
            "Move it away or write somewhere else"
        )
    owner.record.add(rel)


def _opened(handle: OutputFolder) -> None:
    """An output folder opens: writes into it are recorded (fsutil's hook is set while any is open,
    so importing this module changes nothing)."""
    _open.append(handle)
    fsutil.before_write = _record_write


def _closed(handle: OutputFolder) -> None:
    _open.remove(handle)
    if not _open:
        fsutil.before_write = None


def remove_written(path: Path) -> bool:
    """Delete ``path`` if flexseg's record in the open output folder holding it lists it (and no
    link lies on the way); anything else is left alone. True when it was deleted."""
    path = Path(os.path.abspath(path))
    owner = max((f for f in _open if path.is_relative_to(f.folder)), key=lambda f: len(f.folder.parts), default=None)
    if owner is None:
        return False
    rel = path.relative_to(owner.folder).as_posix()
    return rel in owner.record and owner.record.remove(rel)


# ---------------------------------------------------------------- locks


def _describe_holder(lock_path: Path) -> str:
    try:
        holder = json.loads(_read_own_file(lock_path))
        return (
            f"flexseg {holder.get('command', '?')} (pid {holder.get('pid', '?')}, since {holder.get('started', '?')})"
        )
    except (OSError, ValueError, RunError):
        return "another flexseg process"


@contextlib.contextmanager
def folder_lock(folder: Path, lock_path: Path | None = None, command: str = "") -> Iterator[None]:
    """Hold ``folder``'s lock; a second holder is refused at once, naming the first."""
    lock_path = lock_path or folder / LOCK_FILE
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_own_file(lock_path, os.O_RDWR | os.O_CREAT)
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
        if handle.record.older_format:
            handle.record.rewrite(handle.record.names)
        _finish_interrupted(handle)
        _opened(handle)
        try:
            yield handle
        finally:
            _closed(handle)


def _finish_replacement(folder: Path, when: str) -> bool:
    """Roll forward a complete new result that a killed run left in the staging folder (call with
    the folder's lock held). True when there was one."""
    if not (folder / STAGING_DIR / COMPLETE_MARK).exists():
        return False
    out.warn(
        f"{folder}: an earlier flexseg run was stopped while putting its new result in place; finishing that {when}"
    )
    _roll_forward(folder / STAGING_DIR, folder)
    return True


def _finish_interrupted(handle: OutputFolder) -> None:
    if _finish_replacement(handle.folder, "now"):
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
    temporary patterns, starting with ``prefix``), not inside a subfolder that is an output folder
    of its own; call with the folder's lock held."""
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
        # a folder with a lock of its own is another output folder (infer/<name> in a run): it is
        # cleaned when it is opened, never from outside, where another process may be writing
        dirs[:] = [
            d
            for d in dirs
            if not is_temporary_name(d) and d != STAGING_DIR and not os.path.lexists(os.path.join(root, d, LOCK_FILE))
        ]
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
    _opened(inner)
    ok = False
    try:
        yield staging
        ok = True
    finally:
        _closed(inner)
        if not ok and staging.exists() and not (staging / COMPLETE_MARK).exists() and not keep_on_failure():
            shutil.rmtree(staging)


def settle(folder: Path) -> None:
    """Before reading a result from ``folder`` (a model from a run): finish the roll-forward a killed
    writer left, taking the folder's lock for it; while a live writer holds the lock in the middle
    of one, refuse, naming it. A reader never sees half of an old result and half of a new one."""
    folder = Path(os.path.abspath(folder))
    if not (folder / STAGING_DIR / COMPLETE_MARK).exists():
        return
    with folder_lock(folder, command=f"{' '.join(sys.argv[1:2])} (finishing a replacement)"):
        _finish_replacement(folder, "before reading it")


def _stamps(folder: Path, names: tuple[str, ...]) -> tuple:
    """What changes when a file is replaced: its inode, size and time; and whether a replacement is pending."""
    stamps = []
    for name in names:
        try:
            st = os.stat(folder / name)
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return (*stamps, (folder / STAGING_DIR / COMPLETE_MARK).exists())


def read_consistently(folder: Path, names: tuple[str, ...], read: Callable[[], object], attempts: int = 3) -> object:
    """``read()`` the files ``names`` of ``folder`` as one version: settle the folder first, and read
    again when any of them was replaced meanwhile (a writer putting a new result in place)."""
    for _ in range(attempts):
        settle(folder)
        before = _stamps(folder, names)
        value = read()
        if _stamps(folder, names) == before and not before[-1]:
            return value
        time.sleep(0.5)
    raise RunError(
        f"{folder}: {', '.join(names)} kept changing while they were read (another flexseg process is writing "
        "them); wait for it to finish and run again"
    )


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
    through_link = [rel for rel in new if inside(target, rel) is None]
    if through_link:
        raise RunError(
            f"{target}: {through_link[0]!r} would be put in place through a link; flexseg never writes through a "
            f"link it did not make. Remove the link; the new result stays in {staging.name} until then"
        )
    old = record.names if replace is None else {n for n in record.names if n.split("/")[0] in replace}
    record.rewrite(record.names | new)  # first: everything that may stand in the folder is recorded
    for rel in sorted(old - new):
        if record.remove(rel):
            _prune_empty_parents((target / rel).parent, target)
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
