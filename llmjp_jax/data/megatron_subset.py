"""A Megatron dataset as a mixture subset: `data.mixture.<name> = {"megatron": PREFIX_OR_FOLDER,
"tokenizer": SPM_MODEL, "level": "L1", "repeats": ...}`.

A Megatron dataset names neither its tokenizer nor its release level, so the subset must. At start-up:
every `.idx`/`.bin` is checked (data/megatron.py); the dtype must hold the tokenizer's ids, and with
data.verify_shards="sha256" (or "auto" up to AUTO_SHA256_BYTES) every id is scanned against its
vocabulary. Documents are read as written, never changed: llmjp-tokenize's documents are
`<s> ... </s>`, Megatron's (preprocess_data.py --append-eod, LLM-jp's way) `... </s>` without BOS; the
run logs how many of the first documents start with BOS and end with EOD, and warns when they lack EOD.
"""

import os

import grain
import numpy as np

from llmjp_jax.data.manifest import AUTO_SHA256_BYTES, ShardError
from llmjp_jax.data.megatron import MegatronDataset, find_prefixes
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.log import get_logger

log = get_logger()
BOUNDARY_SAMPLE = 100_000  # documents of each dataset whose first and last token are looked at


def open_megatron(name: str, spec, vocab_rows: int | None, verify: str) -> tuple[dict, list[MegatronDataset]]:
    """A manifest-like summary of the subset (tokens, documents, tokenizer, level) and its datasets."""
    setting = f"data.mixture.{name}"
    for key in ("tokenizer", "level"):
        if not spec.get(key):
            raise UserError(f"{setting}.megatron needs {setting}.{key}: a Megatron dataset records "
                            "neither the SentencePiece model it was made with nor its release level.")
    if not os.path.isfile(spec["tokenizer"]):
        raise MissingFileError(f"Tokenizer model {spec['tokenizer']} (set by {setting}.tokenizer) does "
                               "not exist.")
    tokenizer = Tokenizer(spec["tokenizer"])
    if vocab_rows is not None and tokenizer.vocab_size > vocab_rows:
        raise ShardError(f"The tokenizer of {setting} has {tokenizer.vocab_size} pieces but the model has "
                         f"{vocab_rows} embedding rows: raise model.vocab_size to >= {tokenizer.vocab_size}.")
    datasets = [MegatronDataset(prefix) for prefix in find_prefixes(spec["megatron"])]
    size = sum(os.path.getsize(ds.bin_path) for ds in datasets)
    scan = verify == "sha256" or (verify == "auto" and size <= AUTO_SHA256_BYTES)
    for ds in datasets:
        ds.check_vocab(tokenizer.vocab_size, scan, f"{tokenizer.path} ({setting}.tokenizer)")
    _log_boundaries(setting, datasets, tokenizer)
    manifest = {"documents": sum(ds.num_documents for ds in datasets),
                "tokens": sum(ds.num_tokens for ds in datasets),
                "release_level": spec["level"], "language": spec.get("language", ""),
                "tokenizer": {"path": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256,
                              "vocab_size": tokenizer.vocab_size},
                "megatron": [os.path.abspath(ds.prefix) for ds in datasets]}
    return manifest, datasets


def _log_boundaries(setting: str, datasets: list[MegatronDataset], tokenizer: Tokenizer):
    counts = [ds.boundary_counts(tokenizer.bos_id, tokenizer.eos_id, BOUNDARY_SAMPLE) for ds in datasets]
    seen = sum(min(ds.num_documents, BOUNDARY_SAMPLE) for ds in datasets)
    bos, eod = (sum(c[key] for c in counts) for key in ("documents_starting_with_bos",
                                                        "documents_ending_with_eod"))
    log.info("%s: of the first %d documents, %d start with BOS <s> and %d end with EOD </s>; documents are "
             "read as written (no BOS added).", setting, seen, bos, eod)
    if eod < seen:
        log.warning("%s: %d of %d documents do not end with EOD </s> (preprocess_data.py --append-eod adds "
                    "it): packed documents will run into each other.", setting, seen - eod, seen)


def _as_document(tokens: np.ndarray) -> dict[str, np.ndarray]:
    return {"tokens": tokens, "real": np.ones_like(tokens)}


def megatron_documents(datasets: list[MegatronDataset]) -> grain.MapDataset:
    """The datasets' documents in order, as the loader's document dicts (like a folder of shards)."""
    parts = [grain.MapDataset.source(ds) for ds in datasets]
    docs = parts[0] if len(parts) == 1 else grain.MapDataset.concatenate(parts)
    return docs.map(_as_document)
