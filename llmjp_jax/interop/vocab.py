"""Vocabulary extension for continual pretraining (the Swallow approach).

The pieces of a new SentencePiece model that the old one lacks are appended to
the old model (old ids keep their meaning). Each new embedding row and output
row starts as the mean of the old rows of the pieces the old tokenizer splits
that string into; rows are padded as the model pads them (model/config.padded_rows).
"""

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from llmjp_jax.errors import MissingFileError
from llmjp_jax.model.config import padded_rows


def merge_tokenizers(old_path: str, new_path: str, out_path: str) -> list[str]:
    """Writes old + the new model's missing normal pieces to out_path; returns the added pieces."""
    old, new = pb.ModelProto(), pb.ModelProto()
    old.ParseFromString(open(old_path, "rb").read())
    new.ParseFromString(open(new_path, "rb").read())
    known = {p.piece for p in old.pieces}
    lowest = min(p.score for p in old.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL)
    added = []
    for piece in new.pieces:
        if piece.type == pb.ModelProto.SentencePiece.NORMAL and piece.piece not in known:
            # Below every old piece, so the old pieces keep winning where they did.
            old.pieces.append(pb.ModelProto.SentencePiece(
                piece=piece.piece, score=lowest - 1.0 - len(added) * 1e-3, type=piece.type))
            added.append(piece.piece)
    with open(out_path, "wb") as f:
        f.write(old.SerializeToString())
    return added


def _mean_rows(rows_VxD: np.ndarray, old: spm.SentencePieceProcessor, pieces: list[str]) -> np.ndarray:
    out = np.empty((len(pieces), rows_VxD.shape[1]), rows_VxD.dtype)
    for i, piece in enumerate(pieces):
        ids = old.encode(piece.replace("\u2581", " "))
        ids = [j for j in ids if j != old.piece_to_id("\u2581")] or ids
        out[i] = rows_VxD[ids].mean(axis=0)
    return out


def extend_params(params: dict, old_tokenizer: str, added: list[str], old_vocab: int) -> dict:
    """Parameters with rows for `added` after the old tokenizer's ids, padded as the model pads."""
    old = spm.SentencePieceProcessor(model_file=old_tokenizer)
    size = old_vocab + len(added)
    padded = padded_rows(size)

    def grow(rows_VxD):
        new_rows = _mean_rows(rows_VxD, old, added)
        pad = np.zeros((padded - size, rows_VxD.shape[1]), rows_VxD.dtype)
        return np.concatenate([rows_VxD[:old_vocab], new_rows, pad])

    out = dict(params)
    out["embed"] = grow(np.asarray(params["embed"]))
    if "head" in params:
        out["head"] = grow(np.asarray(params["head"]).T).T.copy()
    return out


def extend_hf(in_dir: str, new_tokenizer: str, out_dir: str) -> list[str]:
    """A Hugging Face folder (with tokenizer.model) -> the same model with the extended vocabulary."""
    import dataclasses
    import os

    from llmjp_jax.interop.hf_tokenizer import save_hf_tokenizer, special_ids
    from llmjp_jax.model.hf import TOKENIZER, load_hf, read_hf_config, save_hf

    old_tokenizer = os.path.join(in_dir, TOKENIZER)
    if not os.path.isfile(old_tokenizer):
        raise MissingFileError(f"{old_tokenizer} not found: the folder's SentencePiece model is needed.")
    params, cfg = load_hf(in_dir)
    os.makedirs(out_dir, exist_ok=True)
    merged = os.path.join(out_dir, TOKENIZER)
    added = merge_tokenizers(old_tokenizer, new_tokenizer, merged)
    old_vocab = spm.SentencePieceProcessor(model_file=old_tokenizer).get_piece_size()
    params = extend_params(params, old_tokenizer, added, old_vocab)
    cfg = dataclasses.replace(cfg, vocab_size=params["embed"].shape[0])
    max_positions = read_hf_config(in_dir).get("max_position_embeddings", 4096)
    try:  # tokenizer.json etc., so that AutoTokenizer loads the extended vocabulary
        save_hf_tokenizer(merged, out_dir, max_positions)
        ids = special_ids(merged)
    except ValueError:
        ids = None
    save_hf(params, cfg, out_dir, max_positions=max_positions, special_ids=ids)
    return added
