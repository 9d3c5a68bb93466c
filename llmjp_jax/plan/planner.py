"""Rank the layouts of a config on some hardware: enumerate (validate), predict memory and time,
keep what fits, best tokens/s first. Pure arithmetic: no JAX devices, no compile."""

import importlib.util
import time

from llmjp_jax.model.config import LlamaConfig
from llmjp_jax.plan import hardware, memory, timing
from llmjp_jax.plan.layouts import enumerate_valid

DOES_NOT_FIT = "does not fit: predicted memory with margin exceeds HBM"


def load_config(path: str):
    """A preset file's get_config() (what --config=PATH loads), for scripts and tests."""
    spec = importlib.util.spec_from_file_location("llmjp_plan_preset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def model_config(cfg, platform: str) -> LlamaConfig:
    """The model as it would run on `platform` ("auto" attention resolved: splash, cudnn or xla)."""
    return LlamaConfig.from_dict(cfg.model).for_platform("gpu" if platform == "gpu" else platform)


def evaluate(cfg, lay, hw, platform: str | None = None) -> dict:
    """Memory and time predictions of one layout; `platform` picks the memory fit ("cpu" for XLA:CPU)."""
    platform = platform or hw.platform
    mc = model_config(cfg, platform)
    mem = memory.predict(mc, lay, cfg.train.seq_len, mc.attention, platform)
    speed = timing.predict(mc, lay, cfg.train.seq_len, hw)
    return {"layout": lay, "memory": mem, "time": speed, "fits": memory.fits(mem, hw.hbm_bytes),
            "headroom_bytes": hw.hbm_bytes - mem["with_margin"]}


def rank(cfg, hw, num_devices: int, processes: int | None = None, **enum_kwargs) -> dict:
    """Every valid layout evaluated; `fitting` sorted by predicted tokens/s; rejection counts.
    `processes`: the run's JAX processes (None: hardware.processes)."""
    start = time.perf_counter()
    processes = processes or hardware.processes(hw, num_devices)
    valid, rejected = enumerate_valid(cfg, num_devices, hw.per_node, processes, **enum_kwargs)
    fitting = []
    for lay in valid:
        row = evaluate(cfg, lay, hw)
        if row["fits"]:
            fitting.append(row)
        else:
            rejected[DOES_NOT_FIT] += 1
    fitting.sort(key=lambda r: (-r["time"]["tokens_per_s"], r["memory"]["peak"]))
    return {"fitting": fitting, "rejected": rejected, "valid": len(valid), "processes": processes,
            "candidates": len(valid) + sum(n for k, n in rejected.items() if k != DOES_NOT_FIT),
            "seconds": round(time.perf_counter() - start, 2)}


GROUPS = {"mesh": ("data", "fsdp", "tensor", "pipeline"),
          "tp_pp": ("tensor", "pipeline")}  # Megatron's choice: TP x PP, the rest data parallel


def distinct_meshes(result: dict, group: str = "mesh") -> list[dict]:
    """The best fitting layout of each mesh (or of each TP x PP pair), best first."""
    seen, out = set(), []
    for r in result["fitting"]:
        key = tuple(r["layout"].degree(a) for a in GROUPS[group])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def rank_of(result: dict, group: str | None = "mesh", **degrees) -> int | None:
    """1-based rank of the best fitting layout with these degrees (tensor=2, pipeline=2) among the
    best of each group (GROUPS; None: among all fitting layouts); None if none fits."""
    rows = distinct_meshes(result, group) if group else result["fitting"]
    for i, row in enumerate(rows, 1):
        if all(row["layout"].degree(a) == d for a, d in degrees.items()):
            return i
    return None
