"""Errors that name their culprit: a config key, a file, a channel.

Every error a user can cause by bad input is a :class:`CmkdError`; the CLI prints its message
(one line, no traceback) and exits with status 2.
"""


class CmkdError(Exception):
    """A user-facing error: the message names what is wrong and where."""


class ConfigError(CmkdError):
    """A config value is missing or invalid; the message names the key."""


class DataError(CmkdError):
    """A data file is missing, corrupt or of the wrong shape; the message names the file."""


class DivergenceError(CmkdError):
    """A loss became NaN or infinite; the message names the method, epoch and loss term."""


class RegistryError(CmkdError):
    """A module's registration literal (a method's ``REGISTER``, a loader's ``LOADER``) is not a
    literal, is malformed, or clashes with another module's; the message names the file."""
