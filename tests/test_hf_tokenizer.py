"""The exported tokenizer loads with transformers' AutoTokenizer and gives SentencePiece's ids."""

import glob
import math
import os

import pytest
import sentencepiece as spm

from llmjp_jax.data.readers import iter_documents
from llmjp_jax.data.tokenizer import train_tokenizer
from llmjp_jax.interop.hf_tokenizer import build_tokenizer, save_hf_tokenizer, special_ids

from .conftest import SAMPLE, SHARED_DATA

transformers = pytest.importorskip("transformers")

LLMJP_V3 = os.path.join(SHARED_DATA, "tokenizers", "llm-jp-v3", "llm-jp-tokenizer-100k.ver3.0b1.model")
CORPUS = os.path.join(SHARED_DATA, "corpus")

CASES = [
    "日本語の大規模言語モデルを学習する。", "東京都千代田区一ツ橋２丁目１−２　国立情報学研究所",
    "The quick brown fox jumps over the lazy dog.", "def f(x):\n\treturn {'a': [x ** 2]}  # note\n",
    "if (a <= b && c != d) { return; }", " ", "   leading and trailing   ", "a" + " " * 37 + "b",
    "\n\n\t \n", "1234567890 3.14159 2024年12月31日", "０１２３ｶﾀｶﾅ①②", "😀🀄𠮷 ꙮ \u200b \u3000",
    "naïve café Ωμέγα Привет 안녕하세요 مرحبا", "<0x41> <unk> </s> <MASK> <EOD>", "",
]


def _folder(model: str, tmp_path) -> str:
    save_hf_tokenizer(model, str(tmp_path), max_length=4096)
    return str(tmp_path)


def _assert_same(auto, sp: spm.SentencePieceProcessor, texts: list[str]):
    """Default call = [BOS] + SentencePiece's ids (no EOS), and decoding gives the same text."""
    ids = auto(texts).input_ids
    for text, got, want in zip(texts, ids, sp.encode(texts)):
        assert got == [sp.bos_id(), *want], text
        assert auto.decode(got, skip_special_tokens=True) == sp.decode(want), text


def test_corpus_tokenizer_matches_sentencepiece(corpus, tmp_path):
    sp = spm.SentencePieceProcessor(model_file=corpus["tokenizer"])
    auto = transformers.AutoTokenizer.from_pretrained(_folder(corpus["tokenizer"], tmp_path))
    ids = (auto.bos_token_id, auto.eos_token_id, auto.unk_token_id)
    assert ids == (sp.bos_id(), sp.eos_id(), sp.unk_id())
    assert auto.pad_token_id is None and sp.pad_id() == -1  # the model defines no pad id
    assert special_ids(corpus["tokenizer"]) == {"bos_token_id": 1, "eos_token_id": 2, "unk_token_id": 0,
                                                "pad_token_id": None}
    assert len(auto) == sp.get_piece_size()
    _assert_same(auto, sp, CASES)
    documents = [text for path in sorted(glob.glob(os.path.join(SAMPLE, "heldout", "*.jsonl")))
                 for _, text in iter_documents(path)]
    _assert_same(auto, sp, documents)  # whole multi-line documents, as training encodes them
    _assert_same(auto, sp, [line for doc in documents for line in doc.splitlines()])
    emoji = auto("😀", add_special_tokens=False).input_ids
    assert [sp.id_to_piece(i) for i in emoji][-4:] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]


def test_special_token_text(corpus, tmp_path):
    """By default "</s>" in text is plain text, exactly as SentencePiece encodes it for training
    (code contains such strings); split_special_tokens=False makes it the EOS token."""
    sp = spm.SentencePieceProcessor(model_file=corpus["tokenizer"])
    folder = _folder(corpus["tokenizer"], tmp_path)
    text = 'x</s>y<s>z vocab = {"<unk>": 0}'
    default = transformers.AutoTokenizer.from_pretrained(folder)
    assert default(text).input_ids == [sp.bos_id(), *sp.encode(text)]
    parsing = transformers.AutoTokenizer.from_pretrained(folder, split_special_tokens=False)
    parsed = parsing(text, add_special_tokens=False).input_ids
    assert {sp.bos_id(), sp.eos_id(), sp.unk_id()} <= set(parsed)
    assert not {sp.bos_id(), sp.eos_id(), sp.unk_id()} & set(sp.encode(text))


def _score(sp: spm.SentencePieceProcessor, ids: list[int]) -> float:
    return math.fsum(sp.get_score(i) for i in ids)


def _corpus_lines(step: int) -> dict[str, list[str]]:
    files = sorted(glob.glob(os.path.join(CORPUS, "*", "*.txt")))
    if not files:
        pytest.skip(f"no corpus texts under {CORPUS}")
    out = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            out[os.path.basename(path)] = [line for line in f.read().splitlines() if line.strip()][::step]
    return out


def _ties(auto, sp: spm.SentencePieceProcessor, name: str, lines: list[str]) -> int:
    """How many lines differ; each must be a tie: the same total score and the same text."""
    found = 0
    for line, got, want in zip(lines, auto(lines, add_special_tokens=False).input_ids, sp.encode(lines)):
        if got != want:
            found += 1
            assert _score(sp, got) == _score(sp, want), (name, line)
            assert sp.decode(got) == line, (name, line)
    return found


def test_llmjp_v3_tokenizer_matches_sentencepiece(tmp_path):
    """LLM-jp-3's tokenizer on Japanese and English corpus lines.

    SentencePiece sums path scores in float32 (unigram_model.cc, BestPathNode), Hugging Face
    tokenizers in float64. Where two segmentations have exactly the same score (e.g. a run of
    15 "-" as 14+1 or 1+14 pieces, or space runs, whose pieces LLM-jp gave scores in steps of
    7.5), float32 rounding decides for SentencePiece and the first path found for tokenizers.
    Those ties are the only differences allowed, and they must stay rare.
    """
    if not os.path.isfile(LLMJP_V3):
        pytest.skip(f"{LLMJP_V3} is absent")
    sp = spm.SentencePieceProcessor(model_file=LLMJP_V3)
    auto = transformers.AutoTokenizer.from_pretrained(_folder(LLMJP_V3, tmp_path))
    assert sp.encode("日本語の大規模言語モデルを学習する。") == [
        49953, 28998, 68639, 75849, 63986, 29083, 68906, 78482]
    _assert_same(auto, sp, CASES)
    total = ties = 0
    for name, lines in _corpus_lines(step=3).items():
        found = _ties(auto, sp, name, lines)
        if name.startswith("j"):  # JGLUE: plain Japanese sentences, no ties at all
            assert found == 0, name
        total, ties = total + len(lines), ties + found
    assert ties <= 0.01 * total, (ties, total)


def test_user_defined_symbols(tmp_path):
    """user_defined_symbols (LLM-jp-3 was trained with "\\n" as one) are matched as in SentencePiece."""
    files = sorted(glob.glob(os.path.join(SAMPLE, "train", "*.jsonl")))
    model = train_tokenizer(files, str(tmp_path / "ud"), vocab_size=3000,
                            user_defined_symbols=("\n", "<EOD>", "<|user|>", "    "))
    sp = spm.SentencePieceProcessor(model_file=model)
    auto = transformers.AutoTokenizer.from_pretrained(_folder(model, tmp_path / "hf"))
    _assert_same(auto, sp, CASES + ["a\nb<EOD>c<|user|>d    e\n\n", "\n", "<EOD>", "    x", " <|user|>"])
    documents = [text for path in sorted(glob.glob(os.path.join(SAMPLE, "heldout", "*.jsonl")))
                 for _, text in iter_documents(path)]
    _assert_same(auto, sp, documents)


def test_tokenizers_object_is_deterministic(corpus):
    """The same .model always gives the same tokenizer.json (the export is reproducible)."""
    assert build_tokenizer(corpus["tokenizer"]).to_str() == build_tokenizer(corpus["tokenizer"]).to_str()


def test_unsupported_model_is_refused(tmp_path):
    model = str(tmp_path / "bpe")
    text = tmp_path / "t.txt"
    text.write_text("\n".join(["hello world", "こんにちは世界"] * 200), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=model, model_type="bpe", vocab_size=40,
                                   minloglevel=2)
    with pytest.raises(ValueError, match="model_type"):
        build_tokenizer(model + ".model")
