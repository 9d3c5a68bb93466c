"""llmjp-tokenize: JSON lines / plain text -> ArrayRecord shards of int32 tokens + manifest.json.

  llmjp-tokenize --input='data/sample/train/*.jsonl' --output_dir=runs/data/train \
      --tokenizer=runs/data/spm.model
"""


from absl import app, flags

from llmjp_jax.data.readers import expand_inputs
from llmjp_jax.data.shards import tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()

_INPUT = flags.DEFINE_list("input", None, "Files or globs (.jsonl[.gz|.zst], .txt).", required=True)
_OUTPUT = flags.DEFINE_string("output_dir", None, "Where shards and manifest.json go.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "SentencePiece .model file.", required=True)
_FIELD = flags.DEFINE_string("text_field", "text", "JSON field holding the text.")
_DOCS = flags.DEFINE_integer("docs_per_shard", 100_000, "Documents per ArrayRecord shard.")
_LANG = flags.DEFINE_string("language", "", "Language tag recorded in the manifest.")
_LEVEL = flags.DEFINE_enum("release_level", "L1", ["L1", "L2", "L3", "LX", "LZ"],
                           "LLM-jp release level recorded in the manifest.")


def _main(argv):
    del argv
    quiet_libraries()
    manifest = tokenize_files(expand_inputs(_INPUT.value), _OUTPUT.value, Tokenizer(_TOKENIZER.value),
                              _FIELD.value, _DOCS.value, language=_LANG.value,
                              release_level=_LEVEL.value)
    mb = manifest["text_bytes"] / 1e6
    log.info("%s: %d documents, %d tokens, %d shards (%.1f MB of text in %.1f s, %.1f MB/s)",
                 _OUTPUT.value, manifest["documents"], manifest["tokens"], len(manifest["shards"]),
                 mb, manifest["seconds"], mb / max(manifest["seconds"], 1e-9))


def main():
    app.run(_main)


if __name__ == "__main__":
    main()
