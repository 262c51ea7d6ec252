"""Human output: rich on stderr (plain lines when stderr is not a terminal); silent when quiet."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.progress import Progress

_console = Console(stderr=True)
_quiet = False


def configure(quiet: bool = False, console: Console | None = None) -> None:
    global _console, _quiet
    _quiet = quiet
    if console is not None:
        _console = console


def console() -> Console:
    return _console


def is_quiet() -> bool:
    return _quiet


def info(message: str) -> None:
    # printed as it is, never as rich markup: messages hold paths and names, and "[/]" or "[bold]"
    # in a folder name must neither vanish nor raise a MarkupError
    if not _quiet:
        _console.print(escape(message), highlight=False, soft_wrap=True)


MAX_LINE_CHARS = 1000


def one_line(message: str) -> str:
    """``message`` as one printable line: line breaks from file names shown as ``\\n``, bytes
    that are not UTF-8 as ``\\udcXX``, cut at MAX_LINE_CHARS (messages list a few names and
    count the rest)."""
    line = message.encode("utf-8", "backslashreplace").decode("utf-8")
    for char, shown in (("\r", "\\r"), ("\n", "\\n"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        line = line.replace(char, shown)
    return line if len(line) <= MAX_LINE_CHARS else f"{line[:MAX_LINE_CHARS]}… ({len(line):,} characters)"


def warn(message: str) -> None:
    # warnings are shown even when quiet: they are about the user's data; escaped, so a file name or an
    # INI section in [brackets] prints as it is
    _console.print(f"[yellow]warning:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass


def live_progress(*fields: str) -> Progress | None:
    """A rich Progress on stderr (bar, count, ETA and the given text columns), or None when
    quiet or when stderr is not a terminal, where callers print plain lines instead."""
    if _quiet or not _console.is_terminal:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    label, *rest = fields
    return Progress(
        TextColumn(label),
        BarColumn(bar_width=None),  # the bar takes the width the other columns leave
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        *(TextColumn(f) for f in rest),
        console=_console,
    )


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[_NoProgress]:
    """A bar over ``total`` items on a terminal; nothing otherwise (a summary line follows)."""
    bar = live_progress(label)
    if bar is None:
        yield _NoProgress()
        return
    with bar:
        task = bar.add_task("", total=total)

        class _Bar:
            def advance(self, n: int = 1) -> None:
                bar.advance(task, n)

        yield _Bar()
