"""llmjp-tokenize: JSON lines / plain text -> ArrayRecord shards of int32 tokens + manifest.json.

  llmjp-tokenize --input='data/sample/train/*.jsonl' --output_dir=runs/data/train \
      --tokenizer=runs/data/spm.model

A bad input line (malformed JSON, no text, invalid UTF-8) stops the run naming file:line;
with --on_bad_input=skip it is left out and listed in <output_dir>/rejects.jsonl instead.

Runs --num_workers processes over units of at most --chunk_bytes of input, logging progress
every few seconds. Killed at any moment, the same command resumes where it stopped and makes
the same shards; a changed input or tokenizer is refused instead of being mixed in.
"""

import os
import sys

from absl import flags

from llmjp_jax.cli.common import USER_ERROR_EXIT, run
from llmjp_jax.data.readers import BadInputError, expand_inputs
from llmjp_jax.data.tokenize import ON_BAD_INPUT, RELEASE_LEVELS, Options, cpu_count, tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()
_DEFAULT = Options()

_INPUT = flags.DEFINE_list("input", None, "Files or globs (.jsonl[.gz|.zst], .txt).", required=True)
_OUTPUT = flags.DEFINE_string("output_dir", None, "Where shards and manifest.json go.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "SentencePiece .model file.", required=True)
_FIELD = flags.DEFINE_string("text_field", _DEFAULT.text_field, "JSON field holding the text.")
_DOCS = flags.DEFINE_integer("docs_per_shard", _DEFAULT.docs_per_shard, "Documents per ArrayRecord shard.")
_LANG = flags.DEFINE_string("language", _DEFAULT.language, "Language tag recorded in the manifest.")
_LEVEL = flags.DEFINE_enum("release_level", _DEFAULT.release_level, list(RELEASE_LEVELS),
                           "LLM-jp release level recorded in the manifest.")
_ON_BAD = flags.DEFINE_enum("on_bad_input", _DEFAULT.on_bad_input, list(ON_BAD_INPUT),
                            "On a bad input line: stop with an error, or skip it and list it in "
                            "<output_dir>/rejects.jsonl.")
_WORKERS = flags.DEFINE_integer("num_workers", _DEFAULT.num_workers, "Processes tokenizing, this one "
                                f"included; 0: one per CPU ({cpu_count()} here), but no more than one per "
                                "32 MiB of input.")
_THREADS = flags.DEFINE_integer("num_threads", _DEFAULT.num_threads,
                                "SentencePiece threads per worker; 0: CPUs / workers.")
_CHUNK = flags.DEFINE_integer("chunk_bytes", _DEFAULT.chunk_bytes, "Largest unit of work (and of "
                              "resumption), in input bytes: uncompressed files are cut at line boundaries "
                              "into units of at most this, or of about 1/256 of the input (>= 4 MiB) if "
                              "that is smaller.")
_COMPRESSION = flags.DEFINE_string("compression", _DEFAULT.compression, "ArrayRecord compression of the "
                                   "shards (snappy, zstd:3, brotli:6, uncompressed).")
_LOG_EVERY = flags.DEFINE_float("log_every", _DEFAULT.log_every, "Seconds between progress lines (0: none).")


def _main(argv):
    del argv
    quiet_libraries()
    try:
        manifest = tokenize_files(expand_inputs(_INPUT.value), _OUTPUT.value, Tokenizer(_TOKENIZER.value),
                                  text_field=_FIELD.value, docs_per_shard=_DOCS.value, language=_LANG.value,
                                  release_level=_LEVEL.value, on_bad_input=_ON_BAD.value,
                                  num_workers=_WORKERS.value, num_threads=_THREADS.value,
                                  chunk_bytes=_CHUNK.value, compression=_COMPRESSION.value,
                                  log_every=_LOG_EVERY.value)
    except BadInputError as e:
        hint = " (--on_bad_input=skip skips such lines and lists them)" if e.kind else ""
        log.error("%s%s", e, hint)
        sys.exit(USER_ERROR_EXIT)
    mb = (manifest["text_bytes"] - manifest["units"]["resumed_text_bytes"]) / 1e6  # tokenized by this run
    log.info("%s: %d documents, %d tokens, %d shards (%.1f MB of text in %.1f s, %.1f MB/s)%s%s",
             _OUTPUT.value, manifest["documents"], manifest["tokens"], len(manifest["shards"]),
             mb, manifest["seconds"], mb / max(manifest["seconds"], 1e-9), _resumed_note(manifest),
             _rejected_note(manifest))


def _resumed_note(manifest: dict) -> str:
    """What the final log line says when an earlier, killed run had done some of the units."""
    units = manifest["units"]
    if not units["resumed"]:
        return ""
    return (f"; resumed: {units['resumed']} of {units['count']} units "
            f"({units['resumed_text_bytes'] / 1e6:.1f} MB of text) done earlier")


def _rejected_note(manifest: dict) -> str:
    """What the final log line says about skipped lines: their count and where they are listed."""
    rejected = manifest["rejected"]
    if rejected["file"] is None:
        return ""
    return f"; rejected lines: {rejected['count']}, listed in {os.path.join(_OUTPUT.value, rejected['file'])}"


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
