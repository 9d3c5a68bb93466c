"""Corpus tokenization throughput: raw batched SentencePiece encode vs. the whole llmjp-tokenize path.

  python benchmarks/bench_tokenize.py [--repeat=4] [--num_workers=2] [--trials=3]

On the same documents (by default the plain text under ../shared/data/corpus, as a
temporary .jsonl of paragraphs, plus data/sample/train/*.jsonl) it measures
(a) `sp.encode(texts, num_threads=n)` on texts already in memory, with the best n, and
(b) `tokenize_files` end to end: reading, JSON parsing, hashing, encoding, int32 records,
ArrayRecord writes, worker start-up and the manifest. Prints one JSON line with both in MB/s
of UTF-8 text and their ratio (target: (b) >= 70% of (a)). Best of --trials, alternating.
"""

import glob
import json
import os
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
_TOKENIZER = flags.DEFINE_string(
    "tokenizer", os.path.join(SHARED, "tokenizers", "llm-jp-v3", "llm-jp-tokenizer-100k.ver3.0b1.model"),
    "SentencePiece model.")
_CORPUS = flags.DEFINE_string("corpus", os.path.join(SHARED, "corpus", "**", "*.txt"),
                              "Plain text files, turned into a temporary .jsonl.")
_JSONL = flags.DEFINE_string("jsonl", os.path.join(ROOT, "data", "sample", "train", "*.jsonl"),
                             "JSON lines files used as they are.")
_REPEAT = flags.DEFINE_integer("repeat", 1, "Write the plain text this many times (a bigger corpus).")
_WORKERS = flags.DEFINE_integer("num_workers", 0, "Workers of (b); 0: one per CPU, as llmjp-tokenize.")
_THREADS = flags.DEFINE_integer("num_threads", 0, "SentencePiece threads per worker of (b); 0: auto.")
_CHUNK = flags.DEFINE_integer("chunk_bytes", 64 << 20, "--chunk_bytes of (b).")
_COMPRESSION = flags.DEFINE_string("compression", "snappy", "Shard compression of (b).")
_TRIALS = flags.DEFINE_integer("trials", 3, "Timed runs of each; the best counts.")
_LINES_PER_DOC = 40  # plain text paragraphs longer than this are cut, like documents of a real corpus


def _text_to_jsonl(patterns: str, out_path: str, repeat: int):
    """Paragraphs (blank-line separated, at most _LINES_PER_DOC lines) of the text files as JSON lines."""
    docs = []
    for path in sorted(glob.glob(patterns, recursive=True)):
        block = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    block.append(line)
                if block and (not line.strip() or len(block) == _LINES_PER_DOC):
                    docs.append("".join(block).rstrip("\n"))
                    block = []
        if block:
            docs.append("".join(block).rstrip("\n"))
    with open(out_path, "w", encoding="utf-8") as f:
        for _ in range(repeat):
            f.writelines(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs)


def _raw_encode(sp, texts: list[str], text_bytes: int) -> tuple[float, int]:
    """(MB/s, threads) of the fastest batched encode of `texts` in memory."""
    best = (0.0, 0)
    for threads in sorted({1, 2, os.cpu_count() or 1, 2 * (os.cpu_count() or 1)}):
        start = time.perf_counter()
        sp.encode(texts, num_threads=threads)
        best = max(best, (text_bytes / 1e6 / (time.perf_counter() - start), threads))
    return best


def _end_to_end(inputs: list[str], tokenizer, out_dir: str) -> tuple[float, dict]:
    from llmjp_jax.data.shards import tokenize_files
    from llmjp_jax.data.tokenize_jobs import cpu_count

    start = time.perf_counter()
    manifest = tokenize_files(inputs, out_dir, tokenizer, num_workers=_WORKERS.value or cpu_count(),
                              num_threads=_THREADS.value, chunk_bytes=_CHUNK.value,
                              compression=_COMPRESSION.value, log_every=0)
    return manifest["text_bytes"] / 1e6 / (time.perf_counter() - start), manifest


def _main(argv):
    del argv
    from llmjp_jax.data.readers import iter_documents
    from llmjp_jax.data.tokenizer import Tokenizer
    from llmjp_jax.log import quiet_libraries

    quiet_libraries()
    if not os.path.isfile(_TOKENIZER.value) or not glob.glob(_CORPUS.value, recursive=True):
        print(f"skipped: {_TOKENIZER.value} or {_CORPUS.value} is absent (../shared/data is needed)")
        return
    tokenizer = Tokenizer(_TOKENIZER.value)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        _text_to_jsonl(_CORPUS.value, corpus, _REPEAT.value)
        inputs = [corpus] + sorted(glob.glob(_JSONL.value))
        texts = [text for path in inputs for _, text in iter_documents(path)]
        text_bytes = sum(len(t.encode("utf-8")) for t in texts)
        raw, e2e = (0.0, 0), (0.0, None)
        for trial in range(_TRIALS.value):
            raw = max(raw, _raw_encode(tokenizer.sp, texts, text_bytes))
            run = _end_to_end(inputs, tokenizer, os.path.join(tmp, f"out{trial}"))
            e2e = max(e2e, run, key=lambda r: r[0])
        assert e2e[1]["text_bytes"] == text_bytes and e2e[1]["documents"] == len(texts)
    print(json.dumps({
        "text_mb": round(text_bytes / 1e6, 2), "documents": len(texts), "tokens": e2e[1]["tokens"],
        "raw_encode_mb_s": round(raw[0], 2), "raw_encode_threads": raw[1],
        "end_to_end_mb_s": round(e2e[0], 2), "ratio": round(e2e[0] / raw[0], 3),
        "num_workers": _WORKERS.value or os.cpu_count(), "units": e2e[1]["units"]["count"],
        "compression": _COMPRESSION.value, "cpus": os.cpu_count(), "python": sys.version.split()[0]}))


if __name__ == "__main__":
    app.run(_main)
