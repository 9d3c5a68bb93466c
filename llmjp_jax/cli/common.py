"""What every llmjp-* command shares: `--help` lists its own flags, and a user's mistake is one line.

Exit status of every command: 0 done; 2 a mistake in what was given (a setting, a file, an input:
any `UserError`, printed as one message without a traceback); 1 anything else, a bug, shown with
its traceback. llmjp-train adds its own codes for stops (see its --help).
"""

import os
import sys
from collections.abc import Callable

from absl import app, flags
from ml_collections import config_flags

from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.log import get_logger, quiet_libraries

USER_ERROR_EXIT = 2
HELP_FLAGS = ("--help", "-h", "--helpshort", "-?")

log = get_logger()


def run(main: Callable[[list[str]], None], module: str):
    """absl's app.run for the command defined in `module` (its __name__)."""
    if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
        print(own_help(module))
        raise SystemExit(0)
    app.run(lambda argv: guarded(main, argv), flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a mistyped or ill-typed flag (a `--config.*` override included)
    reported in one line; absl printed ml_collections' lookup errors as tracebacks."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        problem = str(e)
    except (AttributeError, KeyError) as e:  # what ml_collections raises for a missing field
        problem = _unknown_setting(argv, e)
    log.error("%s (--help lists the flags)", problem)
    raise SystemExit(USER_ERROR_EXIT)


def _unknown_setting(argv: list[str], e: Exception) -> str:
    """'--config.train.stpes=10: no such setting; did you mean "steps"?' from ml_collections' error."""
    inner = e.args[0] if e.args and isinstance(e.args[0], Exception) else e  # AttributeError(KeyError)
    key, _, hint = str(inner.args[0] if inner.args else inner).partition("\n")
    key = key.strip("'")
    arg = next((a for a in argv if f".{key}" in a.partition("=")[0]), None)
    return f"{arg or key}: no such setting" + (f"; {hint.strip()}" if hint else "")


def own_help(module: str) -> str:
    """The command's docstring and its own flags (absl's --help would list only the launcher's)."""
    doc = (sys.modules[module].__doc__ or "").strip()
    key = sys.argv[0] if module == "__main__" else module  # how absl names a script's flags
    return f"{doc}\n\nFlags:\n{flags.FLAGS.module_help(key)}\n\n(--helpfull lists every flag, JAX's too.)"


def guarded(main: Callable[[list[str]], None], argv: list[str]):
    try:
        main(argv)
    except UserError as e:
        log.error("%s", e)
        raise SystemExit(USER_ERROR_EXIT) from None
    except app.UsageError as e:  # a missing or conflicting flag: absl prints it with the usage
        e.exitcode = USER_ERROR_EXIT
        raise


def config_or_usage(config_flag, example: str):
    """A config-driven command's start: quiets the libraries' logs and returns --config's value
    (a usage error naming an example preset when it was not given)."""
    quiet_libraries()
    if not flags.FLAGS[config_flag.name].present:  # (the file name below raises when it was not given)
        raise app.UsageError(f"--config is required, e.g. --config={example}")
    path = config_flags.get_config_filename(flags.FLAGS[config_flag.name])
    if not os.path.isfile(path):
        raise MissingFileError(f"--config={path}: no such file (presets are in configs/, e.g. {example}).")
    return config_flag.value
