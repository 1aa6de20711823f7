"""User-facing errors.

A DlexpError is a mistake the user can fix (a config key, a file, a column). The
entry points print its message alone and exit non-zero; anything else is a bug and
keeps its traceback.
"""


class DlexpError(Exception):
    """Base of every error whose message is meant for the user, not a traceback."""

    exit_code = 2


class ConfigError(DlexpError):
    """A config key has a bad value, or a `_target_` cannot be used."""


class DataError(DlexpError):
    """A data file, column or split cannot be used as configured."""


class TrainingError(DlexpError):
    """Training cannot go on (a non-finite loss, an empty split)."""
