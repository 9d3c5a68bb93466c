"""The Llama-2 decoder: embeddings, a stack of blocks run with scan + remat, output head."""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from llmjp_jax.model.config import LlamaConfig
from llmjp_jax.model.layers import Block, RMSNorm, constrain, dense

_REMAT = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "save_dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Llama(nnx.Module):
    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        # Parameters carry logical axis names only (`llmjp_jax.parallel` turns them into
        # shardings); Flax's eager sharding would need a mesh here. Set per parameter, for this
        # model alone: nothing global changes.
        with nnx.use_eager_sharding(False):
            self._build(cfg, rngs)

    def _build(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        v, d = cfg.padded_vocab, cfg.hidden
        embed = cfg.init_std * jax.random.normal(rngs.params(), (v, d), jnp.float32)
        self.embed = nnx.Param(embed, out_sharding=("vocab", "embed"))
        # Layers are stored stacked on a leading "layers" axis whether or not
        # they run with scan, so checkpoints never depend on `scan`.
        make_blocks = nnx.vmap(
            lambda r: Block(cfg, r), in_axes=0, out_axes=0,
            transform_metadata={nnx.PARTITION_NAME: "layers"})
        self.blocks = make_blocks(rngs.split(cfg.num_layers))
        self.final_norm = RMSNorm(d, cfg.norm_eps)
        if not cfg.tie_embeddings:
            head = cfg.init_std * jax.random.normal(rngs.params(), (d, v), jnp.float32)
            self.head = nnx.Param(head, out_sharding=("embed", "vocab"))

    # ---- the parts: embed -> layer stack -> final norm -> head ------------------------------

    def __call__(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, run_blocks=None):
        """Float32 logits over the padded vocabulary, [B, T, V] (see `hidden`)."""
        return self.logits(self.hidden(tokens_BxT, positions_BxT, segment_ids_BxT, run_blocks))

    def hidden(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, run_blocks=None):
        """The final-normed hidden states [B, T, D] (a chunked loss applies `logits` piece by piece).

        Positions default to 0..T-1; segment ids keep attention inside each packed document.
        `run_blocks(layer_stack, stacked, x, positions, segment_ids)` replaces running the layer
        stack in order (pipeline parallelism).
        """
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(tokens_BxT.shape[1]), tokens_BxT.shape)
        _, stacked = nnx.split(self.blocks)
        run_blocks = run_blocks or (lambda layer_stack, *args: layer_stack(*args))
        x_BxTxD = run_blocks(self.layer_stack(), stacked, self.embed_tokens(tokens_BxT), positions_BxT,
                             segment_ids_BxT)
        return self.final(x_BxTxD)

    def embed_tokens(self, tokens_BxT):
        """Token ids -> input activations [B, T, D] in the compute dtype."""
        # The table is gathered over its embed axis first, as every weight is before use; looked up
        # in a table split only over vocab, rows land where the batch is (each vocab shard adds
        # its rows) instead of a [B, T, D] split over embed that would be re-split by batch.
        embed_VxD = constrain(self.embed[...], "vocab", None)
        x_BxTxD = jnp.take(embed_VxD, tokens_BxT, axis=0).astype(self.cfg.compute_dtype)
        if self.cfg.scaled_embed:
            x_BxTxD = x_BxTxD * jnp.sqrt(float(self.cfg.hidden)).astype(x_BxTxD.dtype)
        return constrain(x_BxTxD, "act_batch", "act_len", "act_embed")

    def final(self, x_BxTxD):
        """The final norm after the last layer."""
        return self.final_norm(constrain(x_BxTxD, "act_head_batch", "act_len", "act_embed"))

    def logits(self, hidden_BxTxD):
        """Final-normed hidden states -> float32 logits [B, T, V]."""
        return output_logits(hidden_BxTxD, self.head_weights())

    def head_weights(self):
        """The output head [D, V] (the embedding's transpose when tied)."""
        return self.embed[...].T if self.cfg.tie_embeddings else self.head[...]

    def decode(self, tokens_BxT, cache: "KVCache"):
        """Generation: the T tokens continue the cached ones; returns (logits [B, T, V], the
        updated cache). Positions come from the cache."""
        positions_BxT = cache.end + jnp.arange(tokens_BxT.shape[1])[None] - cache.start_B[:, None]
        graphdef, stacked = nnx.split(self.blocks)

        def layer(x, params_k_v):
            params, k, v = params_k_v
            return nnx.merge(graphdef, params).decode(x, positions_BxT, (k, v, cache.end, cache.start_B))

        x_BxTxD = self.embed_tokens(tokens_BxT)
        x_BxTxD, (k_L, v_L) = jax.lax.scan(layer, x_BxTxD, (stacked, cache.k_L, cache.v_L))
        cache = KVCache(k_L, v_L, cache.end + x_BxTxD.shape[1], cache.start_B)
        return self.logits(self.final(x_BxTxD)), cache

    def layer_stack(self):
        """layer_stack(stacked, x, positions, segment_ids, choice=None): runs a stack of layers in
        order, with scan or unrolled, each layer rematerialised per model.remat.

        With `choice`, every leaf of `stacked` is [layers, choices, ...] and each layer takes
        [choice] inside its remat region, so the backward pass keeps no copy of the chosen
        parameters (a pipeline stage picks its block per iteration this way).
        """
        graphdef = nnx.graphdef(self.blocks)
        cfg = self.cfg

        def stack_fn(stacked, x_BxTxD, positions_BxT, segment_ids_BxT, choice=None):
            def layer(x, params):
                if choice is not None:
                    params = jax.tree.map(lambda p: p[choice], params)
                return nnx.merge(graphdef, params)(x, positions_BxT, segment_ids_BxT), None

            if cfg.remat != "none":
                layer = jax.checkpoint(layer, policy=_REMAT[cfg.remat], prevent_cse=not cfg.scan)
            if cfg.scan:
                return jax.lax.scan(layer, x_BxTxD, stacked)[0]
            for i in range(jax.tree.leaves(stacked)[0].shape[0]):
                x_BxTxD = layer(x_BxTxD, jax.tree.map(lambda p, i=i: p[i], stacked))[0]
            return x_BxTxD

        return stack_fn


def output_logits(x_BxTxD, head_DxV):
    """Final-normed hidden states -> float32 logits over the padded vocabulary [B, T, V]."""
    logits_BxTxV = dense(x_BxTxD, head_DxV)
    return constrain(logits_BxTxV.astype(jnp.float32), "act_head_batch", "act_len", "act_vocab")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    """Keys and values of every layer for `slots` positions: [layers, B, slots, kv_heads, head_dim].

    Slots 0..end-1 are filled. Row b's real tokens start at slot start_B[b]
    (prompts are left-padded to a common length; earlier slots are never seen).
    """

    k_L: jax.Array
    v_L: jax.Array
    end: jax.Array
    start_B: jax.Array

    @classmethod
    def empty(cls, cfg: LlamaConfig, start_B, slots: int, dtype=jnp.float32) -> "KVCache":
        shape = (cfg.num_layers, len(start_B), slots, cfg.num_kv_heads, cfg.dh)
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.int32(0),
                   jnp.asarray(start_B, jnp.int32))
