"""Corpus tokenization throughput: raw batched SentencePiece encode vs. the whole llmjp-tokenize path.

  python benchmarks/bench_tokenize.py [--repeat=4] [--num_workers=2] [--trials=3]

On the same documents (by default the plain text under ../shared/data/corpus, as a
temporary .jsonl of paragraphs, plus data/sample/train/*.jsonl) it measures
(a) `sp.encode(texts, num_threads=n)` on texts already in memory, with the best n, and
(b) `tokenize_files` end to end: reading, JSON parsing, hashing, encoding, int32 records,
ArrayRecord writes, worker start-up and the manifest. Prints one JSON line with both in MB/s
of UTF-8 text and their ratio (target: (b) >= 70% of (a)), best of --trials, alternating.
Also: (a) with `return_type="numpy"` (what (b) uses: no Python ints), the CPU seconds per MB
of each (all processes and threads), and the CPU seconds other processes took meanwhile: a
busy machine makes the wall clock, and so the ratio, unreliable.
"""

import glob
import json
import os
import resource
import shutil
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
_WORKERS = flags.DEFINE_integer("num_workers", 0, "Workers of (b); 0: automatic, as llmjp-tokenize.")
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


class _Timed:
    """Wall seconds, CPU seconds of this process and its children, and CPU seconds that other
    processes used meanwhile (from /proc/stat; a busy machine makes the wall clock unreliable)."""

    def __enter__(self):
        self._start = (time.perf_counter(), _own_cpu(), _machine_busy())
        return self

    def __exit__(self, *exc):
        wall, own, busy = (now - then for now, then in zip((time.perf_counter(), _own_cpu(), _machine_busy()),
                                                           self._start))
        self.wall, self.cpu, self.others = wall, own, max(0.0, busy - own)


def _own_cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy() -> float:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def _raw_encode(sp, texts: list[str], text_bytes: int, return_type) -> dict:
    """The fastest batched encode of `texts` in memory over thread counts."""
    best = {"mb_s": 0.0}
    for threads in sorted({1, 2, os.cpu_count() or 1, 2 * (os.cpu_count() or 1)}):
        with _Timed() as t:
            sp.encode(texts, num_threads=threads, return_type=return_type)
        if text_bytes / 1e6 / t.wall > best["mb_s"]:
            best = {"mb_s": text_bytes / 1e6 / t.wall, "threads": threads,
                    "cpu_s_per_mb": t.cpu / text_bytes * 1e6, "others_cpu_s": t.others}
    return best


def _end_to_end(inputs: list[str], tokenizer, out_dir: str) -> dict:
    """`tokenize_files` with the settings of the flags (by default those of llmjp-tokenize)."""
    from llmjp_jax.data.tokenize import tokenize_files

    with _Timed() as t:
        manifest = tokenize_files(inputs, out_dir, tokenizer, num_workers=_WORKERS.value,
                                  num_threads=_THREADS.value, chunk_bytes=_CHUNK.value,
                                  compression=_COMPRESSION.value, log_every=0)
    shutil.rmtree(out_dir)
    text_mb = manifest["text_bytes"] / 1e6
    return {"mb_s": text_mb / t.wall, "cpu_s_per_mb": t.cpu / text_mb, "others_cpu_s": t.others,
            "manifest": manifest}


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
        raw, raw_numpy, e2e = {"mb_s": 0.0}, {"mb_s": 0.0}, {"mb_s": 0.0}
        for trial in range(_TRIALS.value):
            raw = max(raw, _raw_encode(tokenizer.sp, texts, text_bytes, int), key=lambda r: r["mb_s"])
            raw_numpy = max(raw_numpy, _raw_encode(tokenizer.sp, texts, text_bytes, "numpy"),
                            key=lambda r: r["mb_s"])
            e2e = max(e2e, _end_to_end(inputs, tokenizer, os.path.join(tmp, f"out{trial}")),
                      key=lambda r: r["mb_s"])
    manifest = e2e.pop("manifest")
    assert manifest["text_bytes"] == text_bytes and manifest["documents"] == len(texts)
    print(json.dumps({
        "text_mb": round(text_bytes / 1e6, 2), "documents": len(texts), "tokens": manifest["tokens"],
        "raw_encode": _rounded(raw), "end_to_end": _rounded(e2e),
        "ratio": round(e2e["mb_s"] / raw["mb_s"], 3),
        "raw_encode_numpy": _rounded(raw_numpy), "ratio_to_numpy": round(e2e["mb_s"] / raw_numpy["mb_s"], 3),
        "workers": manifest["units"]["workers"], "threads": manifest["units"]["threads"],
        "units": manifest["units"]["count"], "compression": _COMPRESSION.value, "cpus": os.cpu_count(),
        "python": sys.version.split()[0]}))


def _rounded(result: dict) -> dict:
    return {k: round(v, 4 if k == "cpu_s_per_mb" else 2) if isinstance(v, float) else v
            for k, v in result.items()}


if __name__ == "__main__":
    app.run(_main)
