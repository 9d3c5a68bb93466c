"""The Llama-2 decoder: embeddings, a stack of blocks run with scan + remat, output head."""

import jax
import jax.numpy as jnp
from flax import nnx

from llmjp_jax.model.config import LlamaConfig
from llmjp_jax.model.layers import Block, RMSNorm, constrain

_REMAT = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "save_dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Llama(nnx.Module):
    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
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

    def __call__(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None):
        """Returns float32 logits over the padded vocabulary, [B, T, V]."""
        cfg = self.cfg
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(tokens_BxT.shape[1]), tokens_BxT.shape)
        x_BxTxD = jnp.take(self.embed[...], tokens_BxT, axis=0).astype(cfg.compute_dtype)
        if cfg.scaled_embed:
            x_BxTxD = x_BxTxD * jnp.sqrt(float(cfg.hidden)).astype(x_BxTxD.dtype)
        x_BxTxD = constrain(x_BxTxD, "act_batch", "act_len", "act_embed")
        x_BxTxD = self._run_blocks(x_BxTxD, positions_BxT, segment_ids_BxT)
        x_BxTxD = self.final_norm(x_BxTxD)
        head_DxV = self.embed[...].T if cfg.tie_embeddings else self.head[...]
        logits_BxTxV = x_BxTxD @ head_DxV.astype(x_BxTxD.dtype)
        return constrain(logits_BxTxV.astype(jnp.float32), "act_batch", "act_len", "act_vocab")

    def _run_blocks(self, x_BxTxD, positions_BxT, segment_ids_BxT):
        graphdef, stacked = nnx.split(self.blocks)

        def layer(x, params):
            return nnx.merge(graphdef, params)(x, positions_BxT, segment_ids_BxT), None

        if self.cfg.remat != "none":
            layer = jax.checkpoint(layer, policy=_REMAT[self.cfg.remat], prevent_cse=not self.cfg.scan)
        if self.cfg.scan:
            return jax.lax.scan(layer, x_BxTxD, stacked)[0]
        for i in range(self.cfg.num_layers):
            x_BxTxD = layer(x_BxTxD, jax.tree.map(lambda p, i=i: p[i], stacked))[0]
        return x_BxTxD
