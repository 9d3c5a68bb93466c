"""Test setup: 8 simulated CPU devices, and a small tokenized corpus made once per session."""

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
# With libtpu installed (the test extra), JAX would also try to start a TPU backend in every process,
# which only one process on a host may hold; TPU targets are compiled for without it.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# With the CUDA plugin installed (the gpu extra), it loads without a GPU only if told not to check
# the driver; then GPU targets can be compiled for too.
os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")

import glob  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample")
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Tokenizer + train/eval shards from the bundled sample corpus, as scripts/demo.sh makes them."""
    from llmjp_jax.data.tokenize import tokenize_files
    from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer

    root = tmp_path_factory.mktemp("corpus")
    train_files = sorted(glob.glob(os.path.join(SAMPLE, "train", "*.jsonl")))
    eval_files = sorted(glob.glob(os.path.join(SAMPLE, "heldout", "*.jsonl")))
    assert train_files and eval_files, "the sample corpus under data/sample is missing"
    model = train_tokenizer(train_files, str(root / "spm"), vocab_size=4000)
    tok = Tokenizer(model)
    tokenize_files(train_files, str(root / "train"), tok, docs_per_shard=300)
    tokenize_files(eval_files, str(root / "eval"), tok)
    return {"tokenizer": model, "train": str(root / "train"), "eval": str(root / "eval")}


def small_config(corpus, **train):
    """The tiny preset shrunk further for fast tests, on the test corpus."""
    from configs.tiny import get_config

    cfg = get_config()
    cfg.model.update(num_layers=2, hidden=64, ffn=128, num_heads=4, num_kv_heads=2)
    cfg.train.update(steps=5, global_batch=8, seq_len=64, log_every=1, eval_every=0,
                     checkpoint_every=100, keep_last=2)
    cfg.optim.warmup_steps = 2
    cfg.train.update(**train)
    cfg.data.update(train_dir=corpus["train"], eval_dir=corpus["eval"])
    return cfg


def read_metrics(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def train_until(cfg, workdir, devices, stop_after: int):
    """Runs `cfg` in `workdir` but stops after step `stop_after`, as a crash would (no final save)."""
    from llmjp_jax.train.loop import Run

    run = Run(cfg, str(workdir), devices)
    original = run.compile_step

    def limited():
        step = original()

        def call(state, batch):
            if int(jax_step(state)) >= stop_after:
                raise _Stop
            return step(state, batch)

        return call

    run.compile_step = limited
    try:
        run.train()
    except _Stop:
        pass


def jax_step(state):
    import jax

    return jax.device_get(state["step"])


class _Stop(Exception):
    pass
