"""The one base for mistakes a user can make and fix (a setting, a file, an input): the CLIs print
their message without a traceback; anything else is a bug and keeps its traceback."""


class UserError(ValueError):
    """A mistake in what the user gave; the message names the setting or file to change."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or a setting points at) does not exist."""


class ExistingFileError(UserError, FileExistsError):
    """Something the user named already exists and would be overwritten."""


class ConfigError(UserError):
    """A setting that cannot work; the message names it."""


def require(ok: bool, message: str):
    """ConfigError(message) unless `ok`: the form every settings check takes."""
    if not ok:
        raise ConfigError(message)
