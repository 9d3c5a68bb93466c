"""Megatron-LM indexed datasets and blend lists, against megatron-core's own writer and reader."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from ml_collections import ConfigDict

from llmjp_jax.data import blend
from llmjp_jax.data.manifest import read_documents
from llmjp_jax.data.megatron import HEADER, MegatronDataset, find_prefixes, to_shards
from llmjp_jax.data.mixture import load_mixture
from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer
from llmjp_jax.errors import MissingFileError, UserError
from tests.conftest import ROOT, SAMPLE

indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset",
                              reason="megatron-core is not installed (pip install --no-deps megatron-core)")
torch = pytest.importorskip("torch")
EOD = 2


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("spm") / "spm"
    return Tokenizer(train_tokenizer([os.path.join(SAMPLE, "train", "en.jsonl")], str(prefix), vocab_size=600,
                                     max_sentences=2000))


def random_documents(seed: int, count: int, vocab: int, eod: bool = True) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    docs = [rng.integers(3, vocab, size=rng.integers(1, 120)) for _ in range(count)]
    return [np.append(d, EOD) if eod else d for d in docs]


def build(prefix: str, docs: list[np.ndarray], dtype, split: bool = False) -> str:
    """Writes `docs` with megatron-core's IndexedDatasetBuilder; `split` cuts each into up to 3 sequences
    (as preprocess_data.py --split-sentences does)."""
    builder = indexed.IndexedDatasetBuilder(prefix + ".bin", dtype=dtype)
    for i, doc in enumerate(docs):
        if split and doc.size >= 3:
            cuts = sorted({1 + i % (doc.size - 1), doc.size // 2}) + [doc.size]
            builder.add_document(doc, list(np.diff([0] + cuts)))
        else:
            builder.add_item(torch.from_numpy(doc))
            builder.end_document()
    builder.finalize(prefix + ".idx")
    return prefix


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Three int32 datasets (one with documents of several sequences) and two uint16 ones."""
    root = tmp_path_factory.mktemp("megatron")
    made = {"int32": [], "uint16": []}
    for i, (kind, split) in enumerate([("int32", False), ("int32", True), ("int32", False),
                                       ("uint16", False), ("uint16", True)]):
        (root / kind).mkdir(exist_ok=True)
        docs = random_documents(i, 1500 + 250 * i, 600, eod=kind == "int32")
        prefix = build(str(root / kind / f"part_{i:04d}_text_document"), docs, np.dtype(kind).type, split)
        made[kind].append((prefix, docs))
    return made


@pytest.mark.parametrize("kind", ["int32", "uint16"])
def test_documents_read_back_identically(datasets, kind):
    for prefix, docs in datasets[kind]:
        ds = MegatronDataset(prefix)
        reference = indexed.IndexedDataset(prefix)
        assert ds.dtype == np.dtype(kind) and len(ds) == len(docs) > 1000
        assert ds.num_tokens == sum(d.size for d in docs) == int(reference.sequence_lengths.sum())
        assert ds.num_sequences == len(reference) and np.array_equal(ds.document_indices,
                                                                     reference.document_indices)
        for i in range(len(docs)):
            assert np.array_equal(ds[i], docs[i]), f"{prefix} document {i}"
            first, last = reference.document_indices[i], reference.document_indices[i + 1]
            joined = np.concatenate([reference[j] for j in range(first, last)])
            assert ds[i].dtype == np.int32 and np.array_equal(ds[i], joined)
        batch = ds.documents(10, 400)
        assert len(batch) == 390 and all(np.array_equal(a, b) for a, b in zip(batch, docs[10:400]))
    assert any(MegatronDataset(p).num_sequences > len(d) for p, d in datasets[kind])  # split documents


def test_merged_dataset_equals_its_parts(datasets, tmp_path):
    """megatron-core's add_index (how big datasets are merged) gives one dataset of all parts' documents."""
    builder = indexed.IndexedDatasetBuilder(str(tmp_path / "merged.bin"), dtype=np.int32)
    for prefix, _ in datasets["int32"]:
        builder.add_index(prefix)
    builder.finalize(str(tmp_path / "merged.idx"))
    merged = MegatronDataset(str(tmp_path / "merged"))
    expected = [d for _, docs in datasets["int32"] for d in docs]
    assert len(merged) == len(expected)
    assert all(np.array_equal(merged[i], d) for i, d in enumerate(expected))


def test_conversion_to_shards_keeps_every_document(datasets, tokenizer, tmp_path):
    prefixes = [p for p, _ in datasets["int32"]]
    manifest = to_shards(prefixes, str(tmp_path / "shards"), tokenizer, docs_per_shard=1000, language="en")
    expected = [d for _, docs in datasets["int32"] for d in docs]
    got = list(read_documents(str(tmp_path / "shards"), verify="sha256"))
    assert len(got) == len(expected) == manifest["documents"]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert manifest["tokens"] == sum(d.size for d in expected) and len(manifest["shards"]) > 3
    assert manifest["megatron"]["documents_ending_with_eod"] == len(expected)
    assert manifest["tokenizer"]["sha256"] == tokenizer.sha256 and manifest["release_level"] == "L1"
    with pytest.raises(UserError, match="already holds"):
        to_shards(prefixes, str(tmp_path / "shards"), tokenizer)


def test_uint16_conversion_reports_missing_eod(datasets, tokenizer, tmp_path):
    folder = os.path.dirname(datasets["uint16"][0][0])
    manifest = to_shards(find_prefixes(folder), str(tmp_path / "u16"), tokenizer)
    expected = [d for _, docs in datasets["uint16"] for d in docs]
    assert all(np.array_equal(a, b) for a, b in zip(read_documents(str(tmp_path / "u16")), expected))
    assert manifest["megatron"]["documents_ending_with_eod"] < len(expected) // 10


def _copy(prefix: str, tmp_path) -> str:
    out = str(tmp_path / "copy")
    for ext in (".idx", ".bin"):
        with open(prefix + ext, "rb") as src, open(out + ext, "wb") as dst:
            dst.write(src.read())
    return out


def _patch(path: str, offset: int, data: bytes):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _resize(path: str, delta: int):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size + delta)


DAMAGE = {  # name -> (what to do to a copy of an int32 dataset, the file the error must name)
    "wrong magic": (lambda p: _patch(p + ".idx", 0, b"NOTANIDX\x00"), ".idx"),
    "version 2": (lambda p: _patch(p + ".idx", 9, struct.pack("<Q", 2)), ".idx"),
    "float dtype": (lambda p: _patch(p + ".idx", 17, struct.pack("<B", 7)), ".idx"),
    "unknown dtype": (lambda p: _patch(p + ".idx", 17, struct.pack("<B", 9)), ".idx"),
    "truncated idx": (lambda p: _resize(p + ".idx", -8), ".idx"),
    "idx cut inside the header": (lambda p: os.truncate(p + ".idx", HEADER.size - 4), ".idx"),
    "idx with extra bytes": (lambda p: _resize(p + ".idx", 3), ".idx"),
    "truncated bin": (lambda p: _resize(p + ".bin", -4), ".bin"),
    "bin with extra tokens": (lambda p: _resize(p + ".bin", 8), ".bin"),
    "pointer out of step": (lambda p: _patch(p + ".idx", HEADER.size + 4 * _count(p) + 8 * 5,
                                             struct.pack("<q", 12)), ".idx"),
    "negative length": (lambda p: _patch(p + ".idx", HEADER.size + 4 * 3, struct.pack("<i", -1)), ".idx"),
    "documents past the end": (lambda p: _patch(p + ".idx", os.path.getsize(p + ".idx") - 8,
                                                struct.pack("<q", _count(p) + 1)), ".idx"),
    "missing idx": (lambda p: os.remove(p + ".idx"), ".idx"),
    "missing bin": (lambda p: os.remove(p + ".bin"), ".bin"),
}


def _count(prefix: str) -> int:
    with open(prefix + ".idx", "rb") as f:
        return HEADER.unpack(f.read(HEADER.size))[3]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_dataset_is_refused_naming_the_file(datasets, tmp_path, damage):
    prefix = _copy(datasets["int32"][0][0], tmp_path)
    MegatronDataset(prefix)  # the undamaged copy opens
    harm, ext = DAMAGE[damage]
    harm(prefix)
    with pytest.raises(UserError) as raised:
        MegatronDataset(prefix)
    assert prefix + ext in str(raised.value), str(raised.value)


def test_vocabulary_mismatches_are_refused(datasets, tmp_path):
    u16 = MegatronDataset(datasets["uint16"][0][0])
    with pytest.raises(UserError, match=r"uint16 .*99574 pieces"):
        u16.check_vocab(99_574)  # LLM-jp v3's vocabulary does not fit uint16
    u16.check_vocab(600)
    with pytest.raises(UserError, match=r"\.bin holds token ids 2\.\.599, outside the 500"):
        MegatronDataset(datasets["int32"][0][0]).check_vocab(500)
    with pytest.raises(MissingFileError, match="no/such/prefix.idx"):
        MegatronDataset("no/such/prefix")
    with pytest.raises(MissingFileError, match="no Megatron dataset"):
        find_prefixes(str(tmp_path))


@pytest.fixture(scope="module")
def blend_files(tmp_path_factory):
    """34 small datasets in two folders (names clash across them) and a train_data.sh listing them."""
    root = tmp_path_factory.mktemp("blend")
    rng = np.random.default_rng(7)
    prefixes = []
    for i in range(34):
        folder = root / ("ja" if i % 2 else "en")
        folder.mkdir(exist_ok=True)
        docs = [rng.integers(3, 600, size=rng.integers(1, 40)) for _ in range(20 + i)]
        prefixes.append(build(str(folder / f"part_{i // 2:04d}.jsonl_text_document"), docs, np.uint16))
    return root, prefixes


def _write_blend(root, prefixes) -> tuple[str, list[float]]:
    """A train_data.sh in every form LLM-jp's scripts use; returns it and the weight of each prefix."""
    weights = [MegatronDataset(p).num_tokens * (1 + i % 4) for i, p in enumerate(prefixes)]
    rel = [os.path.relpath(p, root) for p in prefixes]
    lines = ["#!/bin/bash", "calc() {  # repeats x tokens, as LLM-jp-4's scripts define it", "  r=$1; shift",
             '  python3 -c "print($r * $1, \'$2\')"', "}", f"DATASET_DIR={root}  # where the data is",
             "TRAIN_DATA_PATH=(", "  --data-path", "  $(calc 0 1000 ${DATASET_DIR}/left/out)  # weight 0"]
    lines += [f"  {w} ${{DATASET_DIR}}/{r}" for w, r in zip(weights[:10], rel[:10])]
    lines += [f"  $(calc {1 + i % 4} {MegatronDataset(p).num_tokens} $DATASET_DIR/{r})  # x{1 + i % 4}"
              for i, (p, r) in enumerate(zip(prefixes[10:20], rel[10:20]), 10)]
    lines += [")", "echo ignored shell line $(hostname)"]
    lines += [f'TRAIN_DATA_PATH="${{TRAIN_DATA_PATH}} {w} {root}/{r}"'
              for w, r in zip(weights[20:30], rel[20:30])]
    lines += [f'TRAIN_DATA_PATH="${{TRAIN_DATA_PATH}} \\\n    {w} \\\n    ${{DATASET_DIR}}/{r}"'
              for w, r in zip(weights[30:], rel[30:])]
    path = os.path.join(root, "train_data.sh")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path, [float(w) for w in weights]


def test_blend_list_converts_to_a_mixture_with_its_shares(blend_files):
    root, prefixes = blend_files
    path, weights = _write_blend(root, prefixes)
    entries = blend.read_blend(path, vocab_size=600)
    assert [e.prefix for e in entries] == [str(p) for p in prefixes] and len(entries) >= 30
    assert [e.weight for e in entries] == weights
    assert len({e.name for e in entries}) == len(entries) and entries[0].name == "en_part_0000"
    expected = [w / sum(weights) for w in weights]
    assert blend.shares(entries) == pytest.approx(expected, rel=1e-12)
    for e in entries:
        assert e.tokens == MegatronDataset(e.prefix).num_tokens
        assert e.repeats * e.tokens == pytest.approx(e.weight) and e.repeats in (1, 2, 3, 4)
    rows = blend.blend_table(entries).splitlines()[1:-1]
    shown = [float(row.split()[-1].rstrip("%")) for row in rows]
    assert shown == pytest.approx([100 * s for s in expected], abs=5e-4)
    mixture = blend.mixture_config(entries)
    assert mixture["ja_part_0000"] == {"megatron": os.path.abspath(prefixes[1]), "repeats": 2.0,
                                       "level": "L1"}
    namespace = {}
    exec(blend.config_source(entries, path), namespace)
    assert namespace["MIXTURE"] == mixture


def test_plain_blend_lists_and_their_mistakes(blend_files, tmp_path):
    _, prefixes = blend_files
    plain = tmp_path / "plain.txt"
    plain.write_text(f"# weights only\n3 {prefixes[0]} 1.5 {prefixes[1]}\n")
    assert [e.weight for e in blend.read_blend(str(plain))] == [3.0, 1.5]
    plain.write_text(f"{prefixes[0]}\n{prefixes[1]}\n")  # prefixes alone: each its own tokens
    assert [e.repeats for e in blend.read_blend(str(plain))] == [1.0, 1.0]
    for text, says in [(f"3 {prefixes[0]} {prefixes[1]}\n", ":1: expected WEIGHT PREFIX"),
                       ("TRAIN_DATA_PATH=(\n  1 ${NOWHERE_SET_X}/a\n)\n", ":2: $NOWHERE_SET_X is not set"),
                       (f"1 {prefixes[0]}\n2 {prefixes[0]}x\n", f"{prefixes[0]}x.idx"),
                       ("# nothing\n", "lists no dataset")]:
        plain.write_text(text)
        with pytest.raises(UserError, match=None) as raised:
            blend.read_blend(str(plain))
        assert says in str(raised.value), str(raised.value)


def _convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmjp_jax.cli.convert", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_commands(blend_files, datasets, tokenizer, tmp_path):
    root, prefixes = blend_files
    path, weights = _write_blend(root, prefixes)
    out = _convert("megatron-blend", f"--input={path}", f"--output={tmp_path / 'mix.py'}",
                   f"--tokenizer={tokenizer.path}")
    assert out.returncode == 0, out.stderr[-2000:]
    total = next(line for line in out.stdout.splitlines() if line.startswith("total"))
    assert total.split()[-1] == "100.000%" and "ja_part_0016" in out.stdout
    namespace = {}
    exec((tmp_path / "mix.py").read_text(), namespace)
    subsets = load_mixture(ConfigDict({"train_dir": "", "mixture": namespace["MIXTURE"]}), 640)
    assert {s.manifest["tokenizer"]["path"] for s in subsets} == {os.path.abspath(tokenizer.path)}
    by_prefix = {os.path.abspath(p): w for p, w in zip(prefixes, weights)}
    run_shares = {s.manifest["megatron"][0]: s.tokens * s.repeats for s in subsets}
    total = sum(run_shares.values())
    assert len(subsets) == len(prefixes)
    assert {p: v / total for p, v in run_shares.items()} == pytest.approx(
        {p: w / sum(weights) for p, w in by_prefix.items()}, rel=1e-9)
    prefix = datasets["int32"][1][0]
    out = _convert("megatron-to-shards", f"--input={prefix}.idx", f"--output={tmp_path / 'shards'}",
                   f"--tokenizer={tokenizer.path}", "--docs_per_shard=700")
    assert out.returncode == 0, out.stderr[-2000:]
    assert all(np.array_equal(a, b) for a, b in zip(read_documents(str(tmp_path / "shards")),
                                                    datasets["int32"][1][1]))
    out = _convert("megatron-to-shards", f"--input={prefix}x", f"--output={tmp_path / 'bad'}",
                   f"--tokenizer={tokenizer.path}")
    said = out.stdout + out.stderr
    assert out.returncode == 2 and f"{prefix}x.idx" in said and "Traceback" not in said, said[-2000:]
