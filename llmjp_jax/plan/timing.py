"""Step time of a layout: matmul FLOPs at a calibrated efficiency, each collective's bytes over the
link it crosses, the pipeline bubble, and what overlaps.

compute = hardware FLOPs per device (the model's, plus what remat and loss chunks recompute)
          / (peak x EFFICIENCY), stretched by the bubble: x (M R + S - 1) / (M R)
exposed = tensor all-reduces (4 per layer pass, 6 with full remat) + pipeline hand-overs
hidden  = fsdp gathers and reduce-scatters + the data all-reduce, behind compute (XLA's async
          collectives): only what exceeds compute shows
step    = compute + exposed + max(0, hidden - compute)
"""

import dataclasses

from llmjp_jax.plan.layout import Layout
from llmjp_jax.plan.memory import layer_passes, param_counts

# Fraction of dense bf16 peak the matmuls reach (hardware FLOPs, recompute included), set so that
# CALIBRATION's layout predicts LLM-jp's measured speed (`calibrate` finds it; tests check it).
EFFICIENCY = 0.39
# LLM-jp-3 13B as LLM-jp ran it: 32 nodes x 8 H100, TP=2, PP=2, DP=64, micro-batch 1 (16 pipeline
# microbatches per step), global batch 1024, ~3.8k tokens/s per GPU; selective recompute ~ save_dots.
CALIBRATION = {"preset": "configs/llmjp3/13b.py", "hardware": "h100-80gb", "nodes": 32,
               "tokens_per_device": 3800.0}


def calibration_layout() -> Layout:
    return Layout(data=64, pipeline=2, fsdp=1, tensor=2, microbatches=1, remat="save_dots", loss_chunk=0,
                  repeats=1, pipe_micro=16, dcn=(32, 1, 1, 1), global_batch=1024)


@dataclasses.dataclass(frozen=True)
class Comm:
    name: str
    seconds: float
    hidden: bool  # overlaps with compute


def _ring(size: float, axis: str, lay, hw, reduce: bool = False) -> float:
    """Seconds of a ring collective over `axis` moving a `size`-byte full vector: the inner
    (intra-node) ring, then the outer one over the slower link; an all-reduce moves twice as much."""
    n, outer = lay.degree(axis), lay.dcn_degree(axis)
    inner = n // outer
    if n == 1:
        return 0.0
    t = size * (inner - 1) / inner / hw.intra_bw + size / inner * (outer - 1) / outer / hw.inter_bw
    return 2 * t if reduce else t


def hardware_flops_per_token(mc, lay, seq: int) -> float:
    """Forward + backward FLOPs per token, with the forward work that remat and chunks redo."""
    layer_fwd = 2 * mc.num_layers * (mc.layer_params() - 2 * mc.hidden)
    attn_fwd = 4 * mc.num_layers * mc.num_heads * mc.dh * seq
    head_fwd = 2 * mc.padded_vocab * mc.hidden
    total = 3 * (layer_fwd + attn_fwd + head_fwd)
    redo = {"full": layer_fwd + attn_fwd, "save_dots": attn_fwd, "none": 0}[lay.remat]
    return total + redo + (head_fwd if lay.loss_chunk else 0)


def compute_seconds(mc, lay, seq: int, hw, efficiency: float = EFFICIENCY) -> float:
    tokens = lay.global_batch * seq
    return tokens * hardware_flops_per_token(mc, lay, seq) / lay.devices / (hw.peak_flops * efficiency)


def bubble(lay) -> float:
    """Idle share of stage time per accumulation step: (S - 1) / (M R + S - 1)."""
    if lay.pipeline == 1:
        return 0.0
    return (lay.pipeline - 1) / (lay.stage_micro * lay.repeats + lay.pipeline - 1)


def collectives(mc, lay, seq: int, hw) -> list[Comm]:
    """Seconds per step of each collective family, per device."""
    c = 2 if mc.dtype == "bfloat16" else 4
    p = param_counts(mc, lay)
    passes = lay.microbatches * layer_passes(mc, lay)  # layer passes per step, this device
    act = lay.seqs_per_device * seq * mc.hidden * c
    tp_per_pass = 6 if lay.remat == "full" else 4
    # fsdp: each pass gathers the layer (forward, and again for the backward) in the compute dtype
    # and reduce-scatters its float32 gradient; the tables once per accumulation step.
    def gathers_and_scatter(elements):  # two gathers in the compute dtype, one f32 reduce-scatter
        return 2 * _ring(c * elements, "fsdp", lay, hw) + _ring(4 * elements, "fsdp", lay, hw)

    fsdp = passes * gathers_and_scatter(p["layer"] * lay.fsdp)
    fsdp += lay.microbatches * gathers_and_scatter((p["tables"] - mc.hidden) * lay.fsdp)
    grads = 4 * (p["layers"] + p["tables"])
    tensor = passes * tp_per_pass * _ring(act, "tensor", lay, hw, reduce=True)
    out = [Comm("tensor all-reduce", tensor, False),
           Comm("fsdp gather/scatter", fsdp, True),
           Comm("data all-reduce", _ring(grads, "data", lay, hw, reduce=True), True)]
    if lay.pipeline > 1:
        hop = act / hw.inter_bw if lay.dcn_degree("pipeline") > 1 else act / hw.intra_bw
        iterations = lay.stage_micro * lay.repeats + lay.pipeline - 1
        send = 2 * lay.microbatches * iterations * hop
        if lay.repeats > 1:  # layers put in stage order and the gradients back, once per step
            send += 2 * 4 * p["layers"] / hw.intra_bw
        out.append(Comm("pipeline permutes", send, False))
    return out


def predict(mc, lay, seq: int, hw, efficiency: float = EFFICIENCY) -> dict:
    """Step seconds, tokens/s, MFU (model FLOPs, model/config.py's formula), and the parts."""
    compute = compute_seconds(mc, lay, seq, hw, efficiency)
    stretched = compute / (1 - bubble(lay))
    comms = collectives(mc, lay, seq, hw)
    exposed = sum(x.seconds for x in comms if not x.hidden)
    hidden = sum(x.seconds for x in comms if x.hidden)
    step = stretched + exposed + max(0.0, hidden - stretched)
    tokens = lay.global_batch * seq
    mfu = tokens * mc.flops_per_token(seq) / step / (lay.devices * hw.peak_flops)
    main = max(comms, key=lambda x: x.seconds)
    return {"step_s": step, "tokens_per_s": tokens / step, "mfu": mfu, "bubble": bubble(lay),
            "compute_s": stretched, "exposed_comm_s": exposed, "hidden_comm_s": hidden,
            "main_comm": main.name, "main_comm_s": main.seconds,
            "comms": {x.name: round(x.seconds, 4) for x in comms}}


def calibrate(mc, lay, seq: int, hw, tokens_per_device: float) -> float:
    """The efficiency at which `lay` predicts `tokens_per_device` (bisection: speed rises with it)."""
    low, high = 0.01, 1.0
    for _ in range(40):
        mid = (low + high) / 2
        speed = predict(mc, lay, seq, hw, mid)["tokens_per_s"] / lay.devices
        low, high = (mid, high) if speed < tokens_per_device else (low, mid)
    return round((low + high) / 2, 4)
