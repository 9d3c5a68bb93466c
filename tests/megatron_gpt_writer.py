"""Builds a small Llama-style Megatron-Core GPTModel on CPU and saves it (run by test_megatron_ckpt.py).

  python tests/megatron_gpt_writer.py OUT_DIR TP [--tied]

Each of TP processes (torch gloo) builds its tensor-parallel part of one model (same seed, so the
same global weights for every TP), runs Megatron's own forward on fixed tokens and saves
OUT_DIR/torch_dist/iter_0000000 (dist_checkpointing, torch_dist format: global tensors) and
OUT_DIR/legacy/iter_0000000/mp_rank_0R/model_optim_rng.pt (each rank's own slices), with
latest_checkpointed_iteration.txt in both, plus OUT_DIR/tokens.npy and OUT_DIR/logits.npy.

Megatron-Core assumes CUDA in a few places a CPU run reaches (device placement, a default
causal mask, the attention-dropout RNG fork, a synchronize); this script patches exactly those,
none of which changes the arithmetic: the model's weights and forward are Megatron's own.
"""

import argparse
import contextlib
import os
import sys

import numpy as np
import torch

ARCH = dict(num_layers=2, hidden_size=64, num_attention_heads=4, num_query_groups=2, ffn_hidden_size=96,
            kv_channels=16, layernorm_epsilon=1e-5)
VOCAB, ROTARY_BASE, SEQ = 128, 10_000, 16


def _cpu_only_patches():
    torch.cuda.current_device = lambda: "cpu"
    torch.cuda.synchronize = lambda *a, **k: None


def _model(tied: bool):
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    cfg = TransformerConfig(
        **ARCH, normalization="RMSNorm", gated_linear_unit=True, activation_func=torch.nn.functional.silu,
        add_bias_linear=False, bias_activation_fusion=False, bias_dropout_fusion=False,
        masked_softmax_fusion=False, persist_layer_norm=False, gradient_accumulation_fusion=False,
        apply_rope_fusion=False, hidden_dropout=0.0, attention_dropout=0.0, params_dtype=torch.float32,
        use_cpu_initialization=True, init_method_std=0.2, tensor_model_parallel_size=_tp())
    return GPTModel(cfg, get_gpt_layer_local_spec(normalization="RMSNorm"), vocab_size=VOCAB,
                    max_sequence_length=64, position_embedding_type="rope", rotary_base=ROTARY_BASE,
                    share_embeddings_and_output_weights=tied)


def _tp() -> int:
    return torch.distributed.get_world_size()


def _perturb_norms(model):
    """Norm scales start at 1; random ones check that each lands on the right layer."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name or "layer_norm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))


def _forward(model, tokens):
    from megatron.core import tensor_parallel
    from megatron.core.tensor_parallel.mappings import gather_from_tensor_model_parallel_region

    tensor_parallel.get_cuda_rng_tracker().fork = lambda *a, **k: contextlib.nullcontext()
    positions = torch.arange(tokens.shape[1]).expand(tokens.shape[0], -1)
    mask = torch.triu(torch.ones(tokens.shape[1], tokens.shape[1]), diagonal=1).bool()[None, None]
    model.eval()
    with torch.no_grad():
        logits = model(tokens, positions, attention_mask=mask)
        return gather_from_tensor_model_parallel_region(logits)


def _args(tied: bool) -> argparse.Namespace:
    """What Megatron-LM's checkpoints record of the architecture; like Megatron-LM's own args, they
    hold a Megatron enum (the reader must not need megatron to unpickle it) and a torch dtype."""
    from megatron.core.transformer.enums import AttnBackend

    arch = {("norm_epsilon" if k == "layernorm_epsilon" else k): v for k, v in ARCH.items()}
    return argparse.Namespace(**arch,
                              group_query_attention=True, swiglu=True, normalization="RMSNorm",
                              position_embedding_type="rope", rotary_base=ROTARY_BASE,
                              untie_embeddings_and_output_weights=not tied, add_bias_linear=False,
                              padded_vocab_size=VOCAB, seq_length=SEQ, max_position_embeddings=64,
                              tensor_model_parallel_size=_tp(), pipeline_model_parallel_size=1,
                              attention_backend=AttnBackend.auto, params_dtype=torch.float32)


def _save(model, out: str, tied: bool):
    from megatron.core import dist_checkpointing

    rank = torch.distributed.get_rank()
    for kind in ("torch_dist", "legacy"):
        os.makedirs(os.path.join(out, kind, "iter_0000000"), exist_ok=True)
        if rank == 0:
            with open(os.path.join(out, kind, "latest_checkpointed_iteration.txt"), "w") as f:
                f.write("0")
    state = {"model": model.sharded_state_dict(), "args": _args(tied), "iteration": 0}
    dist_checkpointing.save(state, os.path.join(out, "torch_dist", "iter_0000000"))
    legacy = os.path.join(out, "legacy", "iter_0000000", f"mp_rank_{rank:02d}")
    os.makedirs(legacy, exist_ok=True)
    torch.save({"model": model.state_dict_for_save_checkpoint(), "args": _args(tied), "iteration": 0,
                "checkpoint_version": 3.0}, os.path.join(legacy, "model_optim_rng.pt"))


def _worker(rank: int, world: int, out: str, tied: bool, port: str):
    _cpu_only_patches()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    from megatron.core import parallel_state

    parallel_state.initialize_model_parallel(tensor_model_parallel_size=world)
    torch.manual_seed(0)
    model = _model(tied)
    _perturb_norms(model)
    tokens = torch.from_numpy(np.random.default_rng(0).integers(0, VOCAB, (2, SEQ)))
    logits = _forward(model, tokens)
    if rank == 0:
        np.save(os.path.join(out, "tokens.npy"), tokens.numpy())
        np.save(os.path.join(out, "logits.npy"), logits.numpy())
    _save(model, out, tied)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def main(argv):
    out, world, tied = argv[1], int(argv[2]), "--tied" in argv
    port = str(20_000 + os.getpid() % 20_000)
    torch.multiprocessing.spawn(_worker, (world, out, tied, port), nprocs=world)


if __name__ == "__main__":
    main(sys.argv)
