"""Per-device memory of a layout, from the config's arithmetic (no devices, no compile).

It follows how this code shards and runs the step (parallel/rules.py, parallel/pipeline.py,
train/step.py, train/loss.py): float32 parameters split over fsdp (embed dim) x tensor (heads, mlp,
vocab) x pipeline (layers) and replicated over data; AdamW's mu and nu the same; float32 gradients;
the embedding table and head gathered over fsdp, one layer's weights at a time; each layer's input
saved for the backward pass (remat="full"), more under "save_dots" and "none"; then the peak is
the larger of two phases: the backward of one layer (its working set) or the loss (the float32
logits of one train.loss_chunk). The pipeline adds its float32 hand-over buffers.

`features` are exact sizes of those buffers; COEF holds how many live copies of each the
compilers keep at the peak, fitted to compiled plans per backend (README.md next to this file).
"""

# Live copies of each feature at the peak, fitted to compiled plans (llmjp_jax/plan/README.md):
# "tpu" to the TPU compiler's plans of the presets, "cpu" to XLA:CPU on simulated devices.
# GPUs use "tpu" (no XLA:GPU plans of enough layouts here to fit their own).
COEF = {
    "tpu": {"grads": 3.72, "tables": 0.64, "layer_weights": 1.27, "saved_full": 0.97, "saved_save_dots": 0.89,
            "saved_none": 1.13, "work": 1.29, "loss": 1.57, "loss_chunked": 1.53, "head_hidden": 0.06,
            "head_grad": 0.03, "pipe": 1.32, "pipe_weights": 1.22, "pipe_saved": 2.15},
    "cpu": {"grads": 1.23, "tables": 0.91, "layer_weights": 3.88, "saved_full": 0.05, "saved_save_dots": 0.61,
            "saved_none": 1.16, "work": 0.92, "loss": 1.83, "loss_chunked": 1.83, "head_hidden": 8.8,
            "head_grad": 0.13, "pipe": 2.42, "pipe_weights": 0.05, "pipe_saved": 1.0},
}
MARGIN = 0.10  # kept free on top of the prediction: what the formulas do not see
F32 = 4


def _div(a: int, b: int) -> int:
    return -(-a // b)


def param_counts(mc, lay) -> dict:
    """Parameter elements one device holds: one layer's matrices, all layers here, the tables."""
    d, dh = mc.hidden, mc.dh
    dl, hl, kl, fl = _div(d, lay.fsdp), _div(mc.num_heads, lay.tensor), _div(mc.num_kv_heads, lay.tensor), \
        _div(mc.ffn, lay.tensor)
    layer = dl * hl * dh * 2 + dl * kl * dh * 2 + 3 * dl * fl
    table = _div(mc.padded_vocab, lay.tensor) * dl
    tables = (1 if mc.tie_embeddings else 2) * table
    return {"layer": layer, "layers": _div(mc.num_layers, lay.pipeline) * (layer + 2 * d),
            "table": table, "tables": tables + d}


def layer_passes(mc, lay) -> int:
    """Layer inputs one device saves per accumulation step: layers here x passes through them."""
    if lay.pipeline == 1:
        return mc.num_layers
    s, r, m = lay.pipeline, lay.repeats, lay.stage_micro
    return (m * r + s - 1) * (mc.num_layers // (s * r))


def score_elems(mc, lay, seq: int, impl: str) -> int:
    """Elements of the xla path's causal score blocks of one layer (0 for flash kernels)."""
    if impl != "xla":
        return 0
    size = max(128, seq // 8)
    size = size if seq % size == 0 else seq
    blocks = seq // size
    return lay.seqs_per_device * _div(mc.num_heads, lay.tensor) * size * size * blocks * (blocks + 1) // 2


def _layer_arrays(mc, lay, seq: int, impl: str) -> dict:
    """Bytes of one layer's [b, T, ...] arrays in the compute dtype, and its f32 scores."""
    c = 2 if mc.dtype == "bfloat16" else 4
    n, tp = lay.seqs_per_device * seq, lay.tensor
    heads = _div(mc.num_heads, tp) + 2 * _div(mc.num_kv_heads, tp)
    return {"embed": n * mc.hidden * c, "heads": n * heads * mc.dh * c, "mlp": n * _div(mc.ffn, tp) * c,
            "scores": score_elems(mc, lay, seq, impl) * F32}


def saved_per_layer(a: dict, remat: str) -> int:
    """What one layer keeps for its backward pass under each remat policy (model/llama.py)."""
    if remat == "full":  # its input only
        return a["embed"]
    if remat == "save_dots":  # input, q/k/v, the two projections out, gate and up
        return 3 * a["embed"] + a["heads"] + 2 * a["mlp"]
    # everything: norms (f32 inside), q/k/v before and after RoPE, scores and probabilities, MLP
    return 9 * a["embed"] + 2.5 * a["heads"] + 4 * a["mlp"] + 1.5 * a["scores"]


def head_batch(lay) -> int:
    """Sequences per device at the output head: split over pipeline stages too when it divides."""
    wide = lay.shards * lay.pipeline
    return lay.micro_batch // wide if lay.micro_batch % wide == 0 else lay.micro_batch // lay.shards


def features(mc, lay, seq: int, impl: str) -> dict:
    """Exact bytes per device of each kind of buffer, before counting live copies."""
    p, a = param_counts(mc, lay), _layer_arrays(mc, lay, seq, impl)
    bh, chunk = head_batch(lay), lay.loss_chunk or seq
    pipe = (lay.micro_batch // lay.shards) * seq * mc.hidden * F32 if lay.pipeline > 1 else 0
    return {
        "state": 3 * F32 * (p["layers"] + p["tables"]),  # params + AdamW mu and nu
        "grads": F32 * (p["layers"] + p["tables"]),
        "tables": F32 * p["table"] * lay.fsdp * (1 if mc.tie_embeddings else 2),
        "layer_weights": F32 * p["layer"] * lay.fsdp,
        "saved": saved_per_layer(a, lay.remat) * layer_passes(mc, lay),
        # one layer's backward: f32 norms and residuals, q/k/v/out, MLP, scores, and gradients
        "work": 8 * a["embed"] + 4 * a["heads"] + 5 * a["mlp"] + 2 * a["scores"],
        "loss": bh * chunk * _div(mc.padded_vocab, lay.tensor) * F32,
        "head_hidden": bh * seq * mc.hidden * F32,
        "chunked": int(0 < lay.loss_chunk < seq),
        "pipe": pipe,
        # inside the stage loop a stage's layers (and their gradient sums) are held whole over fsdp
        "pipe_weights": (F32 * p["layer"] * lay.fsdp * (mc.num_layers // lay.pipeline)
                         if lay.pipeline > 1 else 0),
    }


def combine(f: dict, k: dict, remat: str) -> dict:
    """Parts (bytes) from features and copy counts; the peak takes the larger phase."""
    layer_phase = k["work"] * f["work"] + k["layer_weights"] * f["layer_weights"]
    # the loss's backward also accumulates the gathered head's float32 gradient
    # one chunk's logits live in fewer copies than the whole sequence's (no chunk: train.loss_chunk=0)
    logits = k["loss_chunked" if f["chunked"] else "loss"] * f["loss"]
    loss_phase = logits + k["head_hidden"] * f["head_hidden"] + k["head_grad"] * f["tables"] / 2
    return {"state": f["state"], "grads": k["grads"] * f["grads"], "tables": k["tables"] * f["tables"],
            # the stage loop keeps more per saved input (its float32 hand-over and carry): pipe_saved
            "saved_activations": k[f"saved_{remat}"] * f["saved"] * (k["pipe_saved"] if f["pipe"] else 1),
            "pipeline": k["pipe"] * f["pipe"] + k["pipe_weights"] * f["pipe_weights"],
            "layer_phase": layer_phase, "loss_phase": loss_phase}


def predict(mc, lay, seq: int, impl: str, platform: str = "tpu") -> dict:
    """Per-device bytes by part, the peak, and `with_margin` (peak x (1 + MARGIN))."""
    parts = combine(features(mc, lay, seq, impl), COEF["cpu" if platform == "cpu" else "tpu"], lay.remat)
    parts = {name: int(v) for name, v in parts.items()}
    peak = sum(v for name, v in parts.items() if not name.endswith("_phase"))
    peak += max(parts["layer_phase"], parts["loss_phase"])
    return {"parts": parts, "peak": peak, "with_margin": int(peak * (1 + MARGIN))}


def fits(pred: dict, hbm_bytes: int) -> bool:
    return pred["with_margin"] <= hbm_bytes


def gib(pred: dict) -> dict:
    """The parts and the peak in GiB, rounded for printing."""
    out = {name: round(v / 2**30, 3) for name, v in pred["parts"].items()}
    return out | {"peak": round(pred["peak"] / 2**30, 3)}
