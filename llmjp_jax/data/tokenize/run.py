"""`tokenize_files`: a corpus -> a folder of shards + manifest, in parallel, resumable after a kill."""

import dataclasses
import os
import time

import llmjp_jax
from llmjp_jax.data.manifest import write_manifest
from llmjp_jax.data.readers import BadInputError
from llmjp_jax.data.tokenize.plan import Settings, make_plan
from llmjp_jax.data.tokenize.pool import run_units
from llmjp_jax.data.tokenize.state import State, gather
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.errors import UserError
from llmjp_jax.log import get_logger

log = get_logger()
ON_BAD_INPUT = ("error", "skip")
RELEASE_LEVELS = ("L1", "L2", "L3", "LX", "LZ")


@dataclasses.dataclass(frozen=True)
class Options(Settings):
    """Every setting of a tokenization with its default (llmjp-tokenize's flags take theirs from here):
    the Settings that shape the shards, and how the work is run and labelled."""

    batch_docs: int = 1024
    num_threads: int = 0  # SentencePiece threads per worker; <= 0: CPUs / workers
    num_workers: int = 0  # processes, this one included; 0: one per CPU, fewer for a small input
    language: str = ""
    release_level: str = "L1"
    log_every: float = 5.0

    def settings(self) -> Settings:
        return Settings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Settings)})


def tokenize_files(inputs: list[str], output_dir: str, tokenizer: Tokenizer, **options) -> dict:
    """Tokenizes `inputs` into shards under `output_dir` and writes the manifest, last and atomically.

    `options` are the fields of `Options`. The inputs are cut into units of at most `chunk_bytes`,
    tokenized by `num_workers` processes with `num_threads` SentencePiece threads each. A run
    killed at any moment resumes where it stopped and makes the same shards as one that was not;
    progress is logged every `log_every` s.

    A bad input line raises BadInputError (`on_bad_input="error"`), or with "skip" is left out and
    written to `rejects.jsonl`, counted in the manifest's "rejected", so nothing is lost silently.
    """
    opts = Options(**options)
    if opts.on_bad_input not in ON_BAD_INPUT:
        raise UserError(f"on_bad_input must be 'error' or 'skip', not {opts.on_bad_input!r}.")
    start = time.time()
    os.makedirs(output_dir, exist_ok=True)
    plan = make_plan(inputs, tokenizer, opts.settings())
    with State(output_dir, plan) as state:
        resumed = {"resumed": len(state.records),  # units done by an earlier, killed run
                   "resumed_text_bytes": sum(r["text_bytes"] for r in state.records.values())}
        try:
            used = run_units(state, tokenizer, opts.num_workers, opts.num_threads, opts.batch_docs,
                             opts.log_every)
        except BadInputError:
            # Fixing the input changes it, and a changed input cannot resume this run: its state
            # would only be in the way.
            state.remove()
            raise
        empty = _empty_inputs(plan, state.records)
        gathered = gather(state)
        shards = gathered["shards"]
        manifest = {
            "documents": sum(s["documents"] for s in shards), "tokens": sum(s["tokens"] for s in shards),
            "text_bytes": gathered["text_bytes"], "shards": shards, "sources": plan["sources"],
            "rejected": gathered["rejected"],
            "tokenizer": {"path": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256,
                          "vocab_size": tokenizer.vocab_size},
            "language": opts.language, "release_level": opts.release_level,
            "tool": f"llmjp-jax {llmjp_jax.__version__}", "seconds": round(time.time() - start, 3),
            "units": {"count": len(plan["units"]), "bytes": plan["unit_bytes"], **resumed, **used},
            "empty_inputs": empty,
        }
        if not manifest["documents"]:
            state.remove()
            rejected = " or rejected (see rejects.jsonl)" if gathered["rejected"]["count"] else ""
            raise BadInputError(f"No documents in {', '.join(inputs)}: every input is empty or "
                                f"blank{rejected}.")
        write_manifest(output_dir, manifest)
        state.remove()
    return manifest


def _empty_inputs(plan: dict, records: dict) -> list[str]:
    """Inputs that gave no document and no rejected line (empty or blank files), with a warning each."""
    found: dict[str, int] = {}
    for unit in plan["units"]:
        record = records[unit["index"]]
        found[unit["path"]] = found.get(unit["path"], 0) + sum(s["documents"] for s in record["shards"]) \
            + sum(record["rejected"].values())
    empty = [path for path, count in found.items() if count == 0]
    for path in empty:
        log.warning("Input %s holds no document (empty or blank); listed in the manifest's "
                    "empty_inputs.", path)
    return empty
