"""Pipeline parallelism over the mesh's "pipeline" axis: a (circular) microbatched schedule.

The layer stack [L, ...] is cut into `stages` x `repeats` blocks of L / (stages x repeats)
consecutive layers; block b = r x stages + s runs on stage s in its r-th repeat, so a
microbatch goes round the ring of stages `repeats` times (the circular, interleaved schedule:
with repeats > 1 the bubble shrinks by that factor). The loop is written by hand with
`jax.shard_map` (manual over "pipeline" only; data, fsdp and tensor stay with GSPMD inside)
and `jax.lax.ppermute`, because neither JAX nor Flax ships a pipeline schedule.

Schedule: at iteration t, stage s works on microbatch m = (t - s) mod M in repeat
r = (t - s) div M, for t in [0, M x repeats + stages - 1). A stage hands its output to the
next stage; the last stage's output comes back to stage 0, which keeps it in a buffer
slot per microbatch until that microbatch's next repeat starts (M >= stages makes sure it
arrives in time). After the last iteration stage 0's buffer holds every microbatch's final
activations.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from llmjp_jax.errors import ConfigError, require

AXIS = "pipeline"


@dataclasses.dataclass(frozen=True)
class PipelineSchedule:
    stages: int
    repeats: int
    microbatches: int

    @property
    def iterations(self) -> int:
        return self.microbatches * self.repeats + self.stages - 1

    @property
    def bubble_fraction(self) -> float:
        """Share of stage-iterations that do no useful work: (stages - 1) / iterations."""
        return (self.stages - 1) / self.iterations

    def check(self, num_layers: int, batch: int):
        """Raises ConfigError naming the setting when the schedule cannot run."""
        s, r, m = self.stages, self.repeats, self.microbatches
        if num_layers % (s * r):
            raise ConfigError(f"model.num_layers={num_layers} is not divisible by mesh.pipeline={s} x "
                             f"mesh.pipeline_repeats={r}.")
        if m < s:
            raise ConfigError(f"mesh.pipeline_microbatches={m} must be at least mesh.pipeline={s} "
                             "(every stage needs a microbatch to work on).")
        if m % s:
            raise ConfigError(f"mesh.pipeline_microbatches={m} must be a multiple of mesh.pipeline={s}.")
        if batch % m:
            raise ConfigError(f"mesh.pipeline_microbatches={m} does not divide the {batch} sequences "
                             "of a step (train.global_batch / train.microbatches).")


def schedule_from_config(mesh_cfg, stages: int) -> PipelineSchedule:
    """mesh.pipeline_repeats and mesh.pipeline_microbatches (0: as many as stages)."""
    microbatches = int(mesh_cfg.get("pipeline_microbatches", 0)) or stages
    return PipelineSchedule(stages, int(mesh_cfg.get("pipeline_repeats", 1)), microbatches)


def check_config(mesh_cfg, degrees: dict[str, int], num_layers: int, micro: int):
    """ConfigError naming the mesh.pipeline* setting that cannot run `micro` sequences per step
    (train.global_batch / train.microbatches) over these mesh degrees."""
    schedule = schedule_from_config(mesh_cfg, degrees["pipeline"])
    require(schedule.repeats >= 1, f"mesh.pipeline_repeats={schedule.repeats} must be >= 1.")
    require(schedule.stages > 1 or schedule.repeats == 1,
            f"mesh.pipeline_repeats={schedule.repeats} needs mesh.pipeline > 1.")
    schedule.check(num_layers, micro)
    piece, shards = micro // schedule.microbatches, degrees["data"] * degrees["fsdp"]
    require(piece % shards == 0,
            f"A pipeline microbatch of {piece} sequences (train.global_batch / train.microbatches / "
            f"mesh.pipeline_microbatches) cannot be split over mesh.data x mesh.fsdp = {shards} devices.")


class Pipeline:
    """What the train and eval steps need to run the layers as a pipeline.

    The state keeps the layers in model order, contiguously sharded over "pipeline" (so
    checkpoints, exports and other meshes never see the schedule). `to_stages` reorders
    them once per step so each stage holds its own blocks in repeat order; `run_blocks`
    then runs the schedule. Both must run under `jax.set_mesh` with a mesh whose
    "pipeline" axis has `schedule.stages` devices.
    """

    def __init__(self, schedule: PipelineSchedule, layers_key: str = "blocks"):
        self.schedule, self.layers_key = schedule, layers_key

    def to_stages(self, params: dict) -> dict:
        """Model order -> stage order for params[layers_key] (identity without repeats)."""
        if self.schedule.repeats == 1:
            return params
        reorder = jax.shard_map(lambda p: _to_stage_order(p, self.schedule), in_specs=P(AXIS),
                                out_specs=P(AXIS), axis_names={AXIS})
        return {**params, self.layers_key: jax.tree.map(reorder, params[self.layers_key])}

    def run_blocks(self, stack_fn, stacked, x_BxTxD, positions_BxT, segment_ids_BxT):
        """Runs layers given in stage order; `stack_fn(params, x, positions, segment_ids,
        choice=None)` runs a stack of layers (leading axis) in order (see `Llama.layer_stack`)."""
        S, R, M = self.schedule.stages, self.schedule.repeats, self.schedule.microbatches

        # Row i of microbatch m is row i * M + m, so each microbatch spans every data shard.
        def micro(a):
            return a.reshape(a.shape[0] // M, M, *a.shape[1:]).swapaxes(0, 1)

        segs = None if segment_ids_BxT is None else micro(segment_ids_BxT)
        staged = jax.tree.map(lambda p: p.reshape(S, R, p.shape[0] // (S * R), *p.shape[1:]), stacked)
        loop = jax.shard_map(
            lambda p, x, pos, seg: _stage_loop(stack_fn, self.schedule, x_BxTxD.dtype, p, x, pos, seg),
            in_specs=(P(AXIS), P(), P(), None if segs is None else P()), out_specs=P(AXIS),
            # check_vma=False: values inside are not typed as varying per stage, since the Pallas
            # splash kernel (model.attention) cannot carry that type through its gradient.
            axis_names={AXIS}, check_vma=False)
        # The activations cross the shard_map boundary in float32: the sums over the pipeline
        # axis there (the output below, and the input's gradient) stay exact, and XLA:CPU
        # crashes on bfloat16 all-reduces built this way (AllReducePromotion, jaxlib 0.10.2).
        out_MxbxTxD = loop(staged, micro(x_BxTxD.astype(jnp.float32)), micro(positions_BxT), segs)
        return out_MxbxTxD.swapaxes(0, 1).reshape(x_BxTxD.shape).astype(x_BxTxD.dtype)


def _to_stage_order(local, schedule):
    """One stage's contiguous blocks s*R .. s*R+R-1 -> its circular blocks r*S + s (r < R).

    Each block moves once, by ppermute: round k sends every stage's k-th block to the stage
    that runs it. A round's destinations collide when gcd(R, S) = g > 1, so it is split into
    g sub-rounds whose sources are S / g consecutive stages (those never collide). GSPMD
    would instead gather the whole layer stack on every device (it cannot shard this reshape).
    """
    S, R = schedule.stages, schedule.repeats
    g = math.gcd(R, S)
    stage = jax.lax.axis_index(AXIS)
    blocks = local.reshape(R, local.shape[0] // R, *local.shape[1:])
    out = jnp.zeros_like(blocks)
    for k in range(R):
        for j in range(g):
            sources = range(j * S // g, (j + 1) * S // g)
            pairs = [(s, (s * R + k) % S) for s in sources]
            slot = np.full(S, -1)  # where each destination puts what it receives this round
            for s, d in pairs:
                slot[d] = (s * R + k) // S
            received = jax.lax.ppermute(blocks[k], AXIS, pairs)
            mine = jnp.asarray(slot)[stage]
            at = jnp.maximum(mine, 0)  # only the one block is written (or rewritten unchanged)
            out = out.at[at].set(jnp.where(mine >= 0, received, out[at]))
    return out.reshape(local.shape)


def _stage_loop(stack_fn, schedule, dtype, staged, x_MxbxTxD, pos_MxbxT, seg_MxbxT):
    S, R, M = schedule.stages, schedule.repeats, schedule.microbatches
    # Marked as varying before the cast, so the gradient's sum over stages is in float32.
    x_MxbxTxD = jax.lax.pcast(x_MxbxTxD, AXIS, to="varying").astype(dtype)
    # This stage's layers as [layers per block, repeats, ...] (or just [layers per block, ...]).
    layers_KxR1 = jax.tree.map(lambda p: p[0, 0] if R == 1 else p[0].swapaxes(0, 1), staged)
    stage = jax.lax.axis_index(AXIS)
    ring = [(i, (i + 1) % S) for i in range(S)]

    def iteration(carry, t):
        received_bxTxD, buffer_MxbxTxD = carry
        m, r = (t - stage) % M, jnp.clip((t - stage) // M, 0, R - 1)
        first = jnp.where(t < M, x_MxbxTxD[m], buffer_MxbxTxD[m])
        x_bxTxD = jnp.where(stage == 0, first, received_bxTxD)
        seg = None if seg_MxbxT is None else seg_MxbxT[m]
        if R == 1:
            y_bxTxD = stack_fn(layers_KxR1, x_bxTxD, pos_MxbxT[m], seg)
        else:  # the block is picked inside each layer's remat region: no per-iteration copy
            y_bxTxD = stack_fn(layers_KxR1, x_bxTxD, pos_MxbxT[m], seg, choice=r)
        received_bxTxD = jax.lax.ppermute(y_bxTxD, AXIS, ring)
        # On stage 0, what just arrived is the last stage's output for microbatch t - S + 1.
        buffer_MxbxTxD = buffer_MxbxTxD.at[(t - S + 1) % M].set(received_bxTxD)
        return (received_bxTxD, buffer_MxbxTxD), None

    zeros = jnp.zeros_like(x_MxbxTxD)  # varying over stages, like x
    carry = (zeros[0], zeros)
    (_, buffer_MxbxTxD), _ = jax.lax.scan(iteration, carry, jnp.arange(schedule.iterations))
    # Only stage 0's buffer holds the results; the scattered sum hands each stage M / S of the
    # microbatches, so the output head and the loss are split over the stages, not repeated.
    mine = jnp.where(stage == 0, buffer_MxbxTxD, 0).astype(jnp.float32)
    return jax.lax.psum_scatter(mine, AXIS, scatter_dimension=0, tiled=True)
