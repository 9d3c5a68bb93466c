"""The mistakes llmjp-ablate reports in one line (exit 2); each names the flag or file to fix."""

from llmjp_jax.errors import MissingFileError, UserError


class AblateError(UserError):
    """A bad factor, design, plan or result; the message names the flag or file."""


class DesignError(AblateError):
    """Runs, factors and generators that make no usable design (--runs, --generators)."""


class FactorError(AblateError):
    """A factor that is not a mixture change this tool can write (--factors, --factor, --config)."""


class ResultError(AblateError):
    """A run's response that cannot be read (its metrics.jsonl, or the --scores table)."""


class MissingResultError(ResultError, MissingFileError):
    """A run's result file does not exist (the run did not train, or --runs_dir points elsewhere)."""
