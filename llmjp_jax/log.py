"""The project's logger: short lines on stdout, independent of absl's verbosity.

Libraries (orbax, grain, jax) log much at INFO through absl; the CLIs lower
absl to WARNING so that the project's own progress lines stay readable.
"""

import logging
import sys

_NAME = "llmjp_jax"


def get_logger() -> logging.Logger:
    logger = logging.getLogger(_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def quiet_libraries():
    """absl (and every library logging through it) at WARNING unless --verbosity was given."""
    from absl import flags
    from absl import logging as absl_logging

    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
