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

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

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
        """Raises ValueError naming the setting when the schedule cannot run."""
        s, r, m = self.stages, self.repeats, self.microbatches
        if num_layers % (s * r):
            raise ValueError(f"model.num_layers={num_layers} is not divisible by mesh.pipeline={s} x "
                             f"mesh.pipeline_repeats={r}.")
        if m < s:
            raise ValueError(f"mesh.pipeline_microbatches={m} must be at least mesh.pipeline={s} "
                             "(every stage needs a microbatch to work on).")
        if batch % m:
            raise ValueError(f"mesh.pipeline_microbatches={m} does not divide the {batch} sequences "
                             "of a step (train.global_batch / train.microbatches).")


def schedule_from_config(mesh_cfg, stages: int) -> PipelineSchedule:
    """mesh.pipeline_repeats and mesh.pipeline_microbatches (0: as many as stages)."""
    microbatches = int(mesh_cfg.get("pipeline_microbatches", 0)) or stages
    return PipelineSchedule(stages, int(mesh_cfg.get("pipeline_repeats", 1)), microbatches)


def make_runner(schedule: PipelineSchedule):
    """Returns run(stack_fn, stacked, x_BxTxD, positions_BxT, segment_ids_BxT) -> x_BxTxD.

    `stack_fn(params, x, positions, segment_ids)` runs a stack of layers (leading axis) in
    order; the runner gives each stage its own layers. Must be called under `jax.set_mesh`
    with a mesh whose "pipeline" axis has `schedule.stages` devices.
    """
    S, R, M = schedule.stages, schedule.repeats, schedule.microbatches

    def run(stack_fn, stacked, x_BxTxD, positions_BxT, segment_ids_BxT):
        # Row i of microbatch m is row i * M + m, so each microbatch spans every data shard.
        def micro(a):
            return a.reshape(a.shape[0] // M, M, *a.shape[1:]).swapaxes(0, 1)

        def by_stage(p_LxF):
            per_block = p_LxF.shape[0] // (S * R)
            return p_LxF.reshape(R, S, per_block, *p_LxF.shape[1:]).swapaxes(0, 1)

        segs = None if segment_ids_BxT is None else micro(segment_ids_BxT)
        staged = jax.tree.map(by_stage, stacked)
        loop = jax.shard_map(
            lambda p, x, pos, seg: _stage_loop(stack_fn, schedule, p, x, pos, seg),
            in_specs=(P(AXIS), P(), P(), None if segs is None else P()), out_specs=P(),
            axis_names={AXIS})
        out_MxbxTxD = loop(staged, micro(x_BxTxD), micro(positions_BxT), segs)
        return out_MxbxTxD.swapaxes(0, 1).reshape(x_BxTxD.shape)

    return run


def _stage_loop(stack_fn, schedule, staged, x_MxbxTxD, pos_MxbxT, seg_MxbxT):
    S, R, M = schedule.stages, schedule.repeats, schedule.microbatches
    layers_RxK = jax.tree.map(lambda p: p[0], staged)  # this stage's [repeats, layers per block, ...]
    stage = jax.lax.axis_index(AXIS)
    ring = [(i, (i + 1) % S) for i in range(S)]

    def iteration(carry, t):
        received_bxTxD, buffer_MxbxTxD = carry
        m, r = (t - stage) % M, jnp.clip((t - stage) // M, 0, R - 1)
        first = jnp.where(t < M, x_MxbxTxD[m], buffer_MxbxTxD[m])
        x_bxTxD = jnp.where(stage == 0, first, received_bxTxD)
        params = jax.tree.map(lambda p: p[r], layers_RxK)
        seg = None if seg_MxbxT is None else seg_MxbxT[m]
        y_bxTxD = stack_fn(params, x_bxTxD, pos_MxbxT[m], seg)
        received_bxTxD = jax.lax.ppermute(y_bxTxD, AXIS, ring)
        # On stage 0, what just arrived is the last stage's output for microbatch t - S + 1.
        buffer_MxbxTxD = buffer_MxbxTxD.at[(t - S + 1) % M].set(received_bxTxD)
        return (received_bxTxD, buffer_MxbxTxD), None

    zeros = jax.lax.pcast(jnp.zeros_like(x_MxbxTxD), AXIS, to="varying")
    carry = (zeros[0], zeros)
    (_, buffer_MxbxTxD), _ = jax.lax.scan(iteration, carry, jnp.arange(schedule.iterations))
    # Only stage 0's buffer holds the results; the sum hands them to every stage.
    return jax.lax.psum(jnp.where(stage == 0, buffer_MxbxTxD, 0), AXIS)
