"""Every layout this project can run on N devices, checked by the project's own `validate`.

Candidates: mesh.tensor inside a node, mesh.pipeline x mesh.data x mesh.fsdp filling the rest, the
DCN split that puts the outer axes across nodes, pipeline schedules (repeats, microbatches), the
accumulation steps that give whole sequences per device, model.remat and train.loss_chunk, at a
fixed global batch. Each is written into one config (the preset, with its overrides) and passed to
`llmjp_jax.config.validate`; its ConfigError messages, with the numbers taken out, are the
rejection reasons. Before validate only meshes whose outer axes cannot span the nodes are pruned
(and counted); tensor degrees that do not divide a node and pipelines deeper than the layers are
never generated.
"""

import collections
import copy
import math
import re

from llmjp_jax.config import validate
from llmjp_jax.errors import ConfigError
from llmjp_jax.plan.layout import AXES, Layout

REMATS = ("full", "save_dots", "none")
DCN_ORDERS = (("data", "pipeline", "fsdp"), ("pipeline", "data", "fsdp"))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def reason(message: str) -> str:
    """A ConfigError message as a reason shared by every layout it rejects: numbers become N."""
    first = re.split(r"(?<=\.)\s", message.strip())[0]
    return re.sub(r"\d+", "N", first)[:200]


def dcn_splits(degrees: dict, nodes: int) -> list[tuple]:
    """mesh.dcn tuples (AXES order) that spread `nodes` over the outer axes; tensor stays inside."""
    out = []
    for order in DCN_ORDERS:
        left, dcn = nodes, dict.fromkeys(AXES, 1)
        for axis in order:
            dcn[axis] = math.gcd(degrees[axis], left)
            left //= dcn[axis]
        split = tuple(dcn[a] for a in AXES)
        if left == 1 and split not in out:
            out.append(split)
    return out


def meshes(num_devices: int, per_node: int, num_layers: int):
    """(data, pipeline, fsdp, tensor) with tensor inside a node and pipeline <= layers."""
    for tp in divisors(math.gcd(per_node, num_devices)):
        for pp in divisors(num_devices // tp):
            if pp > num_layers:
                continue
            for dp in divisors(num_devices // (tp * pp)):
                yield {"data": dp, "pipeline": pp, "fsdp": num_devices // (tp * pp * dp), "tensor": tp}


def schedules(degrees: dict, num_layers: int) -> list[tuple[int, int]]:
    """(pipeline_repeats, pipeline_microbatches): no repeats, the most, a middle one; M = S or 2S."""
    s = degrees["pipeline"]
    if s == 1:
        return [(1, 0)]
    reps = divisors(num_layers // s) if num_layers % s == 0 else [1]
    picks = sorted({reps[0], reps[len(reps) // 2], reps[-1]})
    return [(r, m) for r in picks for m in (s, 2 * s)]


def accumulations(global_batch: int, shards: int, stage_micro: int, max_seqs: int) -> list[int]:
    """train.microbatches giving 1..max_seqs whole sequences per device per pass; [1] when none
    does (validate then says why)."""
    per = shards * stage_micro
    if global_batch % per:
        return [1]
    return [global_batch // (per * b) for b in divisors(global_batch // per) if b <= max_seqs] or [1]


def candidates(num_layers: int, num_devices: int, per_node: int, global_batch: int, seq_len: int,
               remats=REMATS, loss_chunks=(0, 1024), max_seqs: int = 8):
    """Yields Layouts, or (None, reason) for combinations pruned before validate."""
    nodes = max(1, num_devices // per_node)
    chunks = [c for c in loss_chunks if c == 0 or c < seq_len] or [0]
    for deg in meshes(num_devices, per_node, num_layers):
        splits = dcn_splits(deg, nodes) if num_devices > per_node else [(1, 1, 1, 1)]
        if not splits:
            yield None, "pruned: the mesh's outer axes cannot span the nodes (tensor would cross them)"
            continue
        for dcn in splits:
            for reps, pm in schedules(deg, num_layers):
                shards, stage_micro = deg["data"] * deg["fsdp"], pm or 1
                for mb in accumulations(global_batch, shards, stage_micro, max_seqs):
                    for remat in remats:
                        for chunk in chunks:
                            yield Layout(deg["data"], deg["pipeline"], deg["fsdp"], deg["tensor"], mb, remat,
                                         chunk, reps, pm, dcn, global_batch), None


def enumerate_valid(cfg, num_devices: int, per_node: int, processes: int = 1, **kwargs):
    """(valid layouts, Counter of rejection reasons), each candidate checked by validate as a run of
    `processes` JAX processes would be. `cfg` is not changed."""
    work = copy.deepcopy(cfg)
    m, t = cfg.model, cfg.train
    rejected, valid = collections.Counter(), []
    for lay, pruned in candidates(m.num_layers, num_devices, per_node, t.global_batch, t.seq_len, **kwargs):
        if lay is None:
            rejected[pruned] += 1
            continue
        try:
            validate(lay.apply(work), num_devices, processes)
        except ConfigError as e:
            rejected[reason(str(e))] += 1
            continue
        valid.append(lay)
    return valid, rejected


def rejection(cfg, lay: Layout, num_devices: int, processes: int = 1) -> str | None:
    """validate's message for one layout, or None when it passes."""
    try:
        validate(lay.apply(copy.deepcopy(cfg)), num_devices, processes)
    except ConfigError as e:
        return str(e)
    return None
