"""llmjp-spm-train: train a SentencePiece unigram tokenizer with LLM-jp's settings.

  llmjp-spm-train --input='data/sample/train/*.jsonl' --model_prefix=runs/data/spm --vocab_size=4000
"""


from absl import flags

from llmjp_jax.cli.common import run
from llmjp_jax.data.readers import expand_inputs
from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer
from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()

_INPUT = flags.DEFINE_list("input", None, "Files or globs (.jsonl[.gz|.zst], .txt).", required=True)
_PREFIX = flags.DEFINE_string("model_prefix", None, "Output prefix; writes PREFIX.model.", required=True)
_VOCAB = flags.DEFINE_integer("vocab_size", 8000, "Number of pieces.")
_FIELD = flags.DEFINE_string("text_field", "text", "JSON field holding the text.")
_SYMBOLS = flags.DEFINE_list("user_defined_symbols", [], "Extra pieces that are never split.")
_THREADS = flags.DEFINE_integer("num_threads", 2, "Trainer threads.")


def _main(argv):
    del argv
    quiet_libraries()
    inputs = expand_inputs(_INPUT.value)
    path = train_tokenizer(inputs, _PREFIX.value, _VOCAB.value, _FIELD.value,
                           tuple(_SYMBOLS.value), _THREADS.value)
    log.info("Wrote %s (%d pieces) from %d files", path, Tokenizer(path).vocab_size, len(inputs))


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
