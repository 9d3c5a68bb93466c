"""What every llmjp-* command shares: `--help` lists its own flags, and a user's mistake is one line.

Exit status of every command: 0 done; 2 a mistake in what was given (a setting, a file, an input:
any `UserError`, printed as one message without a traceback); 1 anything else, a bug, shown with
its traceback. llmjp-train adds its own codes for stops (see its --help).
"""

import sys
from collections.abc import Callable

from absl import app, flags

from llmjp_jax.errors import UserError
from llmjp_jax.log import get_logger

USER_ERROR_EXIT = 2
HELP_FLAGS = ("--help", "-h", "--helpshort", "-?")

log = get_logger()


def run(main: Callable[[list[str]], None], module: str):
    """absl's app.run for the command defined in `module` (its __name__)."""
    if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
        print(own_help(module))
        raise SystemExit(0)
    app.run(lambda argv: guarded(main, argv))


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
