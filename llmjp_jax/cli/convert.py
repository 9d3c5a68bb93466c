"""llmjp-convert: checkpoints <-> Hugging Face LlamaForCausalLM folders; Megatron-LM checkpoints, datasets
and blends.

  llmjp-convert to-hf --workdir=runs/tiny --output=runs/tiny-hf [--step=200]
  llmjp-convert from-hf --hf_dir=HF_DIR --workdir=runs/base [--seq_len=4096] [--config=configs/...py]
  llmjp-convert megatron-to-run --megatron_dir=CKPT_DIR --workdir=runs/base [--seq_len=4096] [--config=...]
  llmjp-convert extend-vocab --input=HF_DIR --new_tokenizer=NEW.model --output=HF_DIR2
  llmjp-convert megatron-blend --input=train_data.sh [--output=mixture.py] [--tokenizer=spm.model]
  llmjp-convert megatron-to-shards --input=PREFIX[,PREFIX...]|FOLDER --output=DIR --tokenizer=spm.model

to-hf streams the parameters (never the optimizer state) shard by shard and writes the
tokenizer for AutoTokenizer. from-hf writes a step-0 run that training starts from with
--config.train.init_from=RUN (its data from the beginning); pass the training preset as
--config to have the architecture checked against it and its settings recorded. megatron-to-run
does the same from a Megatron-Core GPT checkpoint (torch_dist, or legacy mp_rank_XX/model_optim_rng.pt
with its TP/PP ranks merged; the architecture from its args, else from --config).

megatron-blend reads a Megatron blend list (LLM-jp's train_data.sh: `TOKENS PREFIX` pairs, tokens
x repeats), prints the mixture table (token counts from the .idx files; share = weight / sum of
weights) and with --output writes a Python file defining MIXTURE for data.mixture. megatron-to-shards
writes Megatron .bin/.idx datasets as ArrayRecord shards + manifest.json with the same documents and
tokens (nothing added: it reports how many documents end with EOD </s> and start with BOS <s>).
"""

from absl import app, flags
from ml_collections import config_flags

from llmjp_jax.cli.common import run
from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_OUTPUT = flags.DEFINE_string("output", None, "Hugging Face folder to write.")
flags.DEFINE_alias("out_dir", "output")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_INPUT = flags.DEFINE_string("input", None, "extend-vocab: Hugging Face folder with tokenizer.model; "
                             "megatron-blend: the blend list; megatron-to-shards: dataset prefixes "
                             "(comma-separated) or a folder of them.")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "megatron-*: the SentencePiece model the datasets were "
                                 "made with (megatron-blend: optional, checks each dataset's dtype).")
_DOCS = flags.DEFINE_integer("docs_per_shard", 100_000, "megatron-to-shards: documents per shard.")
_LANG = flags.DEFINE_string("language", "", "megatron-to-shards: language tag recorded in the manifest.")
_LEVEL = flags.DEFINE_enum("release_level", "L1", ["L1", "L2", "L3", "LX", "LZ"],
                           "megatron-*: LLM-jp release level of the data (manifest / mixture entries).")
_NEW_TOKENIZER = flags.DEFINE_string("new_tokenizer", None, "extend-vocab: SentencePiece model to add.")
_HF_DIR = flags.DEFINE_string("hf_dir", None, "from-hf: Hugging Face Llama folder to read.")
_MEGATRON_DIR = flags.DEFINE_string("megatron_dir", None, "megatron-to-run: Megatron-LM --save folder "
                                    "(or one of its iter_NNNNNNN folders) to read.")
_SEQ_LEN = flags.DEFINE_integer("seq_len", None, "from-hf, megatron-to-run: train.seq_len of the run "
                                "(default: --config's, else the folder's max_position_embeddings or the "
                                "Megatron run's seq_length).")
_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "from-hf, megatron-to-run: the training preset (configs/...py).",
                                          lock_config=False)


def _to_hf():
    from llmjp_jax.interop.export import export_hf

    step = export_hf(_WORKDIR.value, _OUTPUT.value, _STEP.value)
    log.info("Exported %s step %d to %s", _WORKDIR.value, step, _OUTPUT.value)


def _from_hf():
    from llmjp_jax.interop.from_hf import import_hf

    import_hf(_HF_DIR.value, _WORKDIR.value, _SEQ_LEN.value, _CONFIG.value)
    log.info("Wrote %s (step 0) from %s; train from it with --config.train.init_from=%s",
             _WORKDIR.value, _HF_DIR.value, _WORKDIR.value)


def _megatron_to_run():
    from llmjp_jax.interop.megatron_params import import_megatron

    import_megatron(_MEGATRON_DIR.value, _WORKDIR.value, _SEQ_LEN.value, _CONFIG.value)
    log.info("Wrote %s (step 0) from %s; train from it with --config.train.init_from=%s",
             _WORKDIR.value, _MEGATRON_DIR.value, _WORKDIR.value)


def _extend_vocab():
    from llmjp_jax.interop.vocab import extend_hf

    added = extend_hf(_INPUT.value, _NEW_TOKENIZER.value, _OUTPUT.value)
    log.info("Added %d pieces; wrote %s", len(added), _OUTPUT.value)


def _megatron_blend():
    from llmjp_jax.data.blend import blend_table, config_source, read_blend
    from llmjp_jax.data.tokenizer import Tokenizer

    vocab = Tokenizer(_TOKENIZER.value).vocab_size if _TOKENIZER.value else None
    entries = read_blend(_INPUT.value, vocab)
    print(blend_table(entries))
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w", encoding="utf-8") as f:
            f.write(config_source(entries, _INPUT.value, _LEVEL.value, _TOKENIZER.value))
        log.info("Wrote MIXTURE (%d subsets) to %s", len(entries), _OUTPUT.value)


def _megatron_to_shards():
    from llmjp_jax.data.megatron import find_prefixes, to_shards
    from llmjp_jax.data.tokenizer import Tokenizer

    prefixes = [p for part in _INPUT.value.split(",") if part for p in find_prefixes(part)]
    tokenizer = Tokenizer(_TOKENIZER.value)
    manifest = to_shards(prefixes, _OUTPUT.value, tokenizer, _DOCS.value, _LANG.value, _LEVEL.value)
    counts = manifest["megatron"]
    log.info("%s: %d documents, %d tokens, %d shards from %d Megatron dataset(s) in %.1f s; %d documents "
             "end with EOD (id %d), %d start with BOS (id %d), %d empty ones skipped", _OUTPUT.value,
             manifest["documents"], manifest["tokens"], len(manifest["shards"]), len(prefixes),
             manifest["seconds"], counts["documents_ending_with_eod"], counts["eod_id"],
             counts["documents_starting_with_bos"], counts["bos_id"], counts["empty_documents"])
    if counts["documents_ending_with_eod"] < manifest["documents"]:
        log.warning("Not every document ends with EOD (LLM-jp's preprocess_data.py --append-eod adds it): "
                    "without it, packed documents run into each other.")


def _main(argv):
    quiet_libraries()
    command = argv[1] if len(argv) == 2 else ""
    commands = {
        "to-hf": (_to_hf, _WORKDIR.value and _OUTPUT.value),
        "from-hf": (_from_hf, _HF_DIR.value and _WORKDIR.value),
        "megatron-to-run": (_megatron_to_run, _MEGATRON_DIR.value and _WORKDIR.value),
        "extend-vocab": (_extend_vocab, _INPUT.value and _NEW_TOKENIZER.value and _OUTPUT.value),
        "megatron-blend": (_megatron_blend, _INPUT.value),
        "megatron-to-shards": (_megatron_to_shards, _INPUT.value and _OUTPUT.value and _TOKENIZER.value),
    }
    run, ready = commands.get(command, (None, False))
    if not ready:
        raise app.UsageError(__doc__)
    run()  # a UserError (a file, a folder, a setting) is one line and exit 2: cli/common.py


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
