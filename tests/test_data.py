"""Readers, tokenized shards and the Grain pipeline."""

import gzip
import json
import os

import numpy as np
import pytest

from llmjp_jax.data.loader import eval_batches, train_dataset
from llmjp_jax.data.manifest import load_manifest, read_documents
from llmjp_jax.data.readers import BadInputError, iter_documents
from llmjp_jax.data.tokenize import tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer

from .conftest import SHARED_DATA


def _write(path, lines: list[bytes]):
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return str(path)


@pytest.mark.parametrize("line, message", [
    (b'{"text": "ok"', "malformed JSON"),
    (b'{"body": "no text field"}', "no 'text' field"),
    (b'{"text": "   "}', "empty"),
    (b'{"text": 3}', "not a string"),
    (b'{"text": "\xff\xfe broken"}', "invalid UTF-8"),
])
def test_bad_json_lines_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "in.jsonl", [b'{"text": "first"}', line])
    with pytest.raises(BadInputError, match=rf"in\.jsonl:2: .*{message}"):
        list(iter_documents(path))


def test_readers_gzip_jsonl_and_plain_text(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"body": "日本語の文書"}, ensure_ascii=False) + "\n\n")
        f.write(json.dumps({"body": "second"}) + "\n")
    assert [t for _, t in iter_documents(str(tmp_path / "a.jsonl.gz"), "body")] == ["日本語の文書", "second"]
    path = _write(tmp_path / "b.txt", [b"one", b"still one", b"", b"", b"two"])
    assert list(iter_documents(path)) == [(1, "one\nstill one"), (5, "two")]


def test_shards_hold_every_document_with_bos_and_eos(corpus, tmp_path):
    tok = Tokenizer(corpus["tokenizer"])
    texts = [f"文書 {i} は日本語と English が混ざっています。" * (i + 1) for i in range(25)]
    path = _write(tmp_path / "docs.jsonl", [json.dumps({"text": t}).encode() for t in texts])
    manifest = tokenize_files([path], str(tmp_path / "out"), tok, docs_per_shard=10)
    assert manifest["documents"] == 25 and len(manifest["shards"]) == 3
    records = list(read_documents(str(tmp_path / "out")))
    assert len(records) == 25
    for text, ids in zip(texts, records):
        assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert tok.decode(ids[1:-1]) == text
    assert manifest["tokens"] == sum(r.size for r in records)


def test_missing_or_truncated_shard_is_refused(corpus, tmp_path):
    tok = Tokenizer(corpus["tokenizer"])
    path = _write(tmp_path / "d.jsonl", [json.dumps({"text": f"doc {i}"}).encode() for i in range(20)])
    out = tmp_path / "out"
    tokenize_files([path], str(out), tok, docs_per_shard=10)
    os.remove(out / "shard-00001.array_record")
    with pytest.raises(FileNotFoundError, match="shard-00001.array_record"):
        load_manifest(str(out))
    with pytest.raises(ValueError, match="raise model.vocab_size"):
        load_manifest(corpus["train"], vocab_rows=100)


def _train(corpus, seed):
    from ml_collections import ConfigDict

    from llmjp_jax.data.mixture import load_mixture

    subsets = load_mixture(ConfigDict({"train_dir": corpus["train"], "mixture": {}}))
    return train_dataset(subsets, 32, 4, seed=seed)


def _take(ds_iter, n):
    return [next(ds_iter)["tokens"].copy() for _ in range(n)]


def test_pipeline_is_deterministic_and_resumes_exactly(corpus):
    a = iter(_train(corpus, 7))
    b = iter(_train(corpus, 7))
    first = _take(a, 5)
    assert all(np.array_equal(x, y) for x, y in zip(first, _take(b, 5)))
    assert first[0].shape == (4, 33) and first[0].dtype == np.int32
    state = a.get_state()
    expected = _take(a, 6)
    c = iter(_train(corpus, 7))
    c.set_state(state)
    assert all(np.array_equal(x, y) for x, y in zip(expected, _take(c, 6)))
    other = _take(iter(_train(corpus, 8)), 1)
    assert not np.array_equal(other[0], first[0])


def test_resume_from_json_state_at_every_step(corpus):
    """The checkpoint stores the data position as JSON (tuples become lists); resuming from any
    step, mid-document ones included, must give the same next batches."""
    a = iter(_train(corpus, 3))
    for step in range(30):
        state = json.loads(json.dumps(a.get_state()))
        expected = _take(a, 2)
        b = iter(_train(corpus, 3))
        b.set_state(state)
        got = _take(b, 2)
        assert all(np.array_equal(x, y) for x, y in zip(expected, got)), f"resume after step {step}"
        a = b


def test_packing_keeps_every_token_in_order(corpus):
    """One epoch without shuffling, concatenated, equals the documents concatenated."""
    import grain

    from llmjp_jax.data.loader import _documents, _pack

    docs = _documents(corpus["eval"], None)
    stream = np.concatenate([docs[i]["tokens"] for i in range(len(docs))])
    rows = list(_pack(docs.to_iter_dataset(grain.ReadOptions()), 16, 1))
    packed = np.concatenate([r["tokens"][0] for r in rows])
    assert packed.size == (stream.size // 17) * 17
    assert np.array_equal(packed, stream[: packed.size])


def test_processes_read_disjoint_documents_covering_all(corpus):
    """The two processes' document multisets add up to exactly the whole set."""
    from collections import Counter

    from llmjp_jax.data.loader import _documents

    docs = _documents(corpus["train"], None)
    parts = [docs[i::2] for i in range(2)]
    counts = [Counter(bytes(p[j]["tokens"]) for j in range(len(p))) for p in parts]
    whole = Counter(bytes(docs[j]["tokens"]) for j in range(len(docs)))
    assert counts[0] + counts[1] == whole
    assert abs(len(parts[0]) - len(parts[1])) <= 1


def _loader(corpus, process_index, process_count, seed=3):
    from ml_collections import ConfigDict

    from llmjp_jax.data.mixture import load_mixture

    subsets = load_mixture(ConfigDict({"train_dir": corpus["train"], "mixture": {}}))
    return iter(train_dataset(subsets, 32, 8, seed, process_index, process_count, shards=4))


def _global(iterators):
    return np.concatenate([next(it)["tokens"] for it in iterators])


def test_global_batches_do_not_depend_on_the_process_count(corpus):
    """Two processes' local batches, in process order, are the one-process batch row for row."""
    one, two = _loader(corpus, 0, 1), [_loader(corpus, p, 2) for p in range(2)]
    for _ in range(4):
        local = [next(it)["tokens"] for it in two]
        assert [x.shape for x in local] == [(4, 33), (4, 33)]
        assert np.array_equal(np.concatenate(local), next(one)["tokens"])
    evals = [eval_batches(corpus["eval"], 32, 8, 2, p, P, shards=4) for p, P in ((0, 1), (0, 2), (1, 2))]
    for whole, first, second in zip(*evals):
        assert np.array_equal(whole["tokens"], np.concatenate([first["tokens"], second["tokens"]]))


def test_shard_states_move_between_process_counts(corpus):
    """States saved by two processes (merged) resume one process exactly, and vice versa."""
    two = [_loader(corpus, p, 2) for p in range(2)]
    _global(two)
    _global(two)
    merged = {**two[0].get_state(), **two[1].get_state()}
    assert sorted(merged) == ["0", "1", "2", "3"]
    expected = [_global(two) for _ in range(5)]
    one = _loader(corpus, 0, 1)
    one.set_state(json.loads(json.dumps(merged)))
    assert all(np.array_equal(next(one)["tokens"], x) for x in expected)
    back = [_loader(corpus, p, 2) for p in range(2)]
    for it in back:
        it.set_state(one.get_state())
    more = _loader(corpus, 0, 1)
    more.set_state(one.get_state())
    assert all(np.array_equal(_global(back), next(more)["tokens"]) for _ in range(3))
    with pytest.raises(ValueError, match="data.loader_shards=4"):
        _loader(corpus, 0, 1).set_state(two[0].get_state())


def test_eval_batches_are_fixed(corpus):
    a = eval_batches(corpus["eval"], 32, 2, 3)
    b = eval_batches(corpus["eval"], 32, 2, 3)
    assert len(a) == 3 and all(np.array_equal(x["tokens"], y["tokens"]) for x, y in zip(a, b))


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "tokenizers")),
                    reason="../shared/data is absent")
def test_llmjp_v3_tokenizer_ids():
    tok = Tokenizer(os.path.join(SHARED_DATA, "tokenizers", "llm-jp-v3",
                                 "llm-jp-tokenizer-100k.ver3.0b1.model"))
    ids = tok.encode_documents(["日本語の大規模言語モデルを学習する。"])[0]
    assert ids.tolist() == [1, 49953, 28998, 68639, 75849, 63986, 29083, 68906, 78482, 2]
    assert tok.vocab_size == 99_574
