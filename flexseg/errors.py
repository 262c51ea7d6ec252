"""Error types a user can act on. Each carries the process exit code the CLI returns.

Exit codes (documented in docs/guarantees.md for CI users):
  0 success · 1 quality gate failed · 2 usage or experiment error · 3 data error · 4 run or model error
"""

from __future__ import annotations

import re


def excerpt(value: object, limit: int = 60) -> str:
    """A value as an error message quotes it: its repr, cut to ``limit`` characters (a value can be
    megabytes long, and an error is one line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def listing(items: list, limit: int = 3, sep: str = ", ") -> str:
    """The first ``limit`` items and how many more: an error line stays one short line however
    many files it is about."""
    shown = sep.join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit:,} more" if len(items) > limit else "")


class FlexsegError(Exception):
    """A mistake the user can fix; the message names the file or key and the fix."""

    exit_code = 4


class QualityGateError(FlexsegError):
    exit_code = 1


class ConfigError(FlexsegError):
    exit_code = 2


class DataError(FlexsegError):
    exit_code = 3


class RunError(FlexsegError):
    exit_code = 4


def embedded_error(error: Exception) -> FlexsegError | None:
    """The flexseg error inside a TensorFlow error: a DataError raised while tf.data decodes a file
    reaches the caller as an UnknownError whose message holds the Python traceback. Returns that
    error (same type, same message) so the CLI reports it as itself, or None."""
    match = re.search(r"\b(QualityGateError|ConfigError|DataError|RunError): (.+)", str(error))
    if match is None:
        return None
    kind = {c.__name__: c for c in (QualityGateError, ConfigError, DataError, RunError)}[match.group(1)]
    return kind(match.group(2).strip())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the process ends with 128 + the signal number (130, 143)."""

    def __init__(self, signum: int = 2) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        import signal

        return signal.Signals(self.signum).name
