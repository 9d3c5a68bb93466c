"""SentencePiece tokenizer: training with LLM-jp's settings, loading, batched encoding."""

import os
import re
import tempfile

import numpy as np
import sentencepiece as spm

from llmjp_jax.data.readers import iter_documents
from llmjp_jax.errors import UserError
from llmjp_jax.files import file_sha256


class Tokenizer:
    """A loaded SentencePiece model; documents are encoded as `<s> ... </s>`."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Tokenizer model {path} does not exist.")
        self.path = path
        self.sp = spm.SentencePieceProcessor(model_file=path)
        self.sha256 = file_sha256(path)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def bos_id(self) -> int:
        return self.sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    def encode_documents(self, texts: list[str], num_threads: int = -1) -> list[np.ndarray]:
        """Batched encode (SentencePiece threads), each document wrapped in BOS/EOS, int32."""
        ids = self.sp.encode(texts, num_threads=num_threads)
        return [np.asarray([self.bos_id, *doc, self.eos_id], dtype=np.int32) for doc in ids]

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids])


def train_tokenizer(inputs: list[str], model_prefix: str, vocab_size: int, text_field: str = "text",
                    user_defined_symbols: tuple[str, ...] = (), num_threads: int = 2,
                    max_sentences: int = 10_000_000) -> str:
    """Trains a unigram model the way LLM-jp's tokenizers are trained; returns the .model path.

    Settings: byte fallback, digits split, identity normalisation (no NFKC, keep
    whitespace as written), `<unk>`=0, `<s>`=1, `</s>`=2, no pad id.
    """
    os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as tmp:
        for path in inputs:
            for _, text in iter_documents(path, text_field):
                for line in text.splitlines():
                    if line.strip():
                        tmp.write(line + "\n")
    try:
        _train(tmp.name, model_prefix, vocab_size, user_defined_symbols, num_threads, max_sentences)
    finally:
        os.unlink(tmp.name)
    return model_prefix + ".model"


def _train(text_file: str, model_prefix: str, vocab_size: int, user_defined_symbols: tuple[str, ...],
           num_threads: int, max_sentences: int):
    try:
        spm.SentencePieceTrainer.train(
            input=text_file, model_prefix=model_prefix, model_type="unigram",
            vocab_size=vocab_size, byte_fallback=True, split_digits=True,
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True, character_coverage=0.9995,
            user_defined_symbols=list(user_defined_symbols), unk_id=0, bos_id=1, eos_id=2,
            pad_id=-1, num_threads=num_threads, input_sentence_size=max_sentences,
            shuffle_input_sentence=True, max_sentence_length=1 << 16, minloglevel=2)
    except RuntimeError as e:
        largest = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", str(e))
        if largest is None:
            raise
        raise UserError(f"vocab_size={vocab_size} is more pieces than this corpus can make: set "
                        f"--vocab_size to at most {largest.group(1)}, or train on more text.") from None
