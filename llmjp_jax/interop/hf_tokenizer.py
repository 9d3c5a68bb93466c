"""Our SentencePiece unigram model -> Hugging Face tokenizer files that `AutoTokenizer` loads.

transformers 5.x cannot convert these models itself: its `LlamaTokenizer` rebuilds a
unigram .model as a BPE tokenizer, and `TokenizersBackend` drops the dummy prefix and
BOS, so both give other ids. The `tokenizers` object is therefore built here to do what
SentencePiece's unigram encoder does (identity normalisation, as LLM-jp trains):

- the same pieces, ids and scores in a `Unigram` model with byte fallback;
- control, unknown and byte pieces get a score far below every normal piece:
  SentencePiece never matches them in text (they are not in its lattice), while
  `tokenizers` would match e.g. the text "<0x41>" as a byte piece;
- user-defined pieces get SentencePiece's lattice score, length x max score - 0.1;
- " " becomes "▁" and one "▁" is prepended to the text (the dummy prefix), no split.

The ids then match except where two segmentations score exactly the same: SentencePiece
adds path scores in float32, `tokenizers` in float64, so rounding picks one for the former
and the first path found for the latter (e.g. long runs of "-" or spaces; ~0.4% of lines
of the Debian docs with LLM-jp-3's tokenizer, none of JGLUE's; tests/test_hf_tokenizer.py).

By default the tokenizer adds BOS (no EOS), as each training document starts with
`<s>`, and text such as "</s>" or "<unk>" (it occurs in code) is plain text, as
SentencePiece encodes it for training (`split_special_tokens: true`); loading with
`split_special_tokens=False` makes such text the special token (transformers' default).
"""

import json
import os
import shutil

from sentencepiece import sentencepiece_model_pb2 as pb
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

from llmjp_jax.errors import UserError
from llmjp_jax.model.hf import TOKENIZER

PIECE = pb.ModelProto.SentencePiece
UNIGRAM = pb.TrainerSpec.UNIGRAM
FILES = (TOKENIZER, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def load_proto(path: str) -> pb.ModelProto:
    """The model proto, refusing settings the converted tokenizer would not reproduce."""
    proto = pb.ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    norm, trainer = proto.normalizer_spec, proto.trainer_spec
    problems = {
        "model_type (only unigram)": trainer.model_type != UNIGRAM,
        "normalization (only identity)": bool(norm.precompiled_charsmap),
        "remove_extra_whitespaces": norm.remove_extra_whitespaces,
        "escape_whitespaces=false": not norm.escape_whitespaces,
        "treat_whitespace_as_suffix": trainer.treat_whitespace_as_suffix,
    }
    bad = [name for name, wrong in problems.items() if wrong]
    if bad:
        raise UserError(f"{path}: cannot write a matching Hugging Face tokenizer for a model with "
                         f"{', '.join(bad)}.")
    return proto


def _vocab(proto: pb.ModelProto) -> list[tuple[str, float]]:
    normal = [p.score for p in proto.pieces if p.type == PIECE.NORMAL]
    lowest, highest = min(normal), max(normal)

    def score(p) -> float:
        if p.type == PIECE.NORMAL:
            return p.score
        if p.type == PIECE.USER_DEFINED:
            return len(p.piece.encode()) * highest - 0.1
        return (len(p.piece) + 1) * lowest - 1000.0  # never beats spelling the text out

    return [(p.piece, score(p)) for p in proto.pieces]


def _specials(proto: pb.ModelProto) -> dict[str, str | None]:
    t = proto.trainer_spec

    def piece(i):
        return proto.pieces[i].piece if 0 <= i < len(proto.pieces) else None

    return {"bos_token": piece(t.bos_id), "eos_token": piece(t.eos_id), "unk_token": piece(t.unk_id),
            "pad_token": piece(t.pad_id)}


def special_ids(path: str) -> dict[str, int | None]:
    """bos/eos/unk/pad ids of the SentencePiece model (None where it defines none)."""
    t = load_proto(path).trainer_spec
    return {name: (i if i >= 0 else None) for name, i in
            (("bos_token_id", t.bos_id), ("eos_token_id", t.eos_id), ("unk_token_id", t.unk_id),
             ("pad_token_id", t.pad_id))}


def build_tokenizer(path: str) -> Tokenizer:
    """A `tokenizers.Tokenizer` giving the ids SentencePiece gives (module docstring)."""
    proto = load_proto(path)
    tok = Tokenizer(models.Unigram(_vocab(proto), unk_id=proto.trainer_spec.unk_id, byte_fallback=True))
    # A normalizer, not a Metaspace pre-tokenizer: Metaspace skips the prefix when the text
    # already starts with a space, SentencePiece does not.
    prefix = proto.normalizer_spec.add_dummy_prefix
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁")] * prefix + [normalizers.Replace(" ", "▁")])
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    tok.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if prefix else []))
    tok.add_special_tokens([AddedToken(p.piece, special=True, normalized=False)
                            for p in proto.pieces if p.type in (PIECE.CONTROL, PIECE.UNKNOWN)])
    bos = _specials(proto)["bos_token"]
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
            special_tokens=[(bos, proto.trainer_spec.bos_id)])
    return tok


def tokenizer_config(path: str, max_length: int) -> dict:
    """tokenizer_config.json: a fast tokenizer (transformers 4.x and 5.x) adding BOS only, reading
    special-token text as text."""
    specials = _specials(load_proto(path))
    return {"tokenizer_class": "PreTrainedTokenizerFast", **specials,
            "add_bos_token": specials["bos_token"] is not None, "add_eos_token": False,
            "clean_up_tokenization_spaces": False, "split_special_tokens": True,
            "model_max_length": max_length}


def save_hf_tokenizer(model_path: str, out_dir: str, max_length: int) -> list[str]:
    """Writes tokenizer.model (a copy), tokenizer.json, tokenizer_config.json, special_tokens_map.json."""
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, FILES[0])
    if not (os.path.exists(target) and os.path.samefile(model_path, target)):
        shutil.copyfile(model_path, target)
    build_tokenizer(model_path).save(os.path.join(out_dir, FILES[1]))
    config = tokenizer_config(model_path, max_length)
    specials = {k: v for k, v in _specials(load_proto(model_path)).items() if v is not None}
    for name, content in ((FILES[2], config), (FILES[3], specials)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2, ensure_ascii=False)
    return list(FILES)
