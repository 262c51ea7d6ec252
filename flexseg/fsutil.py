"""Writing files so that an interrupted command never leaves a half-written one."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

# Set by flexseg.runs: records each write into an open output folder (and refuses to overwrite a
# file flexseg did not write there). Called before the file is created.
before_write: Callable[[Path], None] | None = None


@functools.cache  # once, on the first write (every atomic write asks)
def _umask() -> int:
    """The process's umask, read without changing it (Linux reports it in /proc); elsewhere the
    classic set-and-restore, done once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(directory: bool = False) -> int:
    """The mode a new file (or folder) gets under the current umask (mkstemp creates files readable
    by the owner only; outputs get the usual mode)."""
    return (0o777 if directory else 0o666) & ~_umask()


def note_write(path: str | Path) -> None:
    """For a writer that cannot use atomic_path (Keras wants its own file endings): record the write."""
    if before_write is not None:
        before_write(Path(path))


NAME_MAX = 255  # bytes in one file name, on every file system flexseg writes to


def _short(stem: str, suffix: str) -> str:
    """``stem`` cut so that the temporary name ``.<stem>.<8 random>.tmp<suffix>`` fits in NAME_MAX
    bytes (a legal 255-byte name must still be writable)."""
    room = NAME_MAX - len(os.fsencode(f"..12345678.tmp{suffix}"))
    return os.fsdecode(os.fsencode(stem)[: max(room, 1)])


@contextlib.contextmanager
def atomic_path(path: str | Path, record: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    The temporary name keeps the final suffix, because some writers (Keras, OpenCV)
    choose the format from it.
    """
    path = Path(path)
    if record and before_write is not None:
        before_write(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{_short(path.stem, path.suffix)}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, public_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str, record: bool = True) -> None:
    with atomic_path(path, record) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE), so that no moment
    exists at which neither is in place. False where the system or file system cannot."""
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))
