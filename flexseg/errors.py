"""Error types a user can act on. Each carries the process exit code the CLI returns.

Exit codes (documented in the README for CI users):
  0 success · 1 quality gate failed · 2 usage or experiment error · 3 data error · 4 run or model error
"""


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
