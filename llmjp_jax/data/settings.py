"""The data.* settings: their choices, defaults and checks, beside the data code they protect.

`config.validate` runs `check` before anything is allocated. Kept free of Grain and ArrayRecord, so
loading a preset does not import the loader.
"""

from llmjp_jax.errors import ConfigError

LOADER_SHARDS = 8  # the default of data.loader_shards
# The arrays each packing puts in a batch, every one [batch, seq_len + 1] int32.
BATCH_KEYS = {"concat": ("tokens",), "first_fit": ("tokens", "segment_ids", "positions")}
PACKINGS = tuple(BATCH_KEYS)
VERIFY = ("auto", "size", "sha256")  # data.verify_shards
AUTO_SHA256_BYTES = 2 << 30  # "auto" hashes the shards at start-up up to this much data


def check(data, global_batch: int, num_processes: int):
    """ConfigError naming the data.* setting that cannot work with this batch and process count."""
    shards = data.loader_shards
    if not (shards > 0 and global_batch % shards == 0):
        raise ConfigError(f"data.loader_shards={shards} must be positive and divide "
                        f"train.global_batch={global_batch}.")
    if shards % num_processes:
        raise ConfigError(f"data.loader_shards={shards} is not divisible by the {num_processes} JAX "
                        "processes; set it to a multiple of the process count.")
    if data.packing not in PACKINGS:
        raise ConfigError(f"data.packing={data.packing!r}: choose one of {PACKINGS}.")
    if data.get("verify_shards", "size") not in VERIFY:
        raise ConfigError(f"data.verify_shards={data.get('verify_shards')!r}: choose one of {VERIFY}.")
