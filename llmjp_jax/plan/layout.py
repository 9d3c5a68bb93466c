"""One candidate layout: the mesh, its DCN split, accumulation, the pipeline schedule, remat, loss chunks.

A Layout is pure arithmetic (no config object, no devices): the memory and time models read it, and
`overrides()` gives the exact `--config.*` flags that run it.
"""

import dataclasses

AXES = ("data", "pipeline", "fsdp", "tensor")


@dataclasses.dataclass(frozen=True)
class Layout:
    data: int
    pipeline: int
    fsdp: int
    tensor: int
    microbatches: int  # train.microbatches (gradient accumulation)
    remat: str
    loss_chunk: int
    repeats: int = 1  # mesh.pipeline_repeats
    pipe_micro: int = 0  # mesh.pipeline_microbatches (0: = stages)
    dcn: tuple = (1, 1, 1, 1)  # mesh.dcn.<axis>, in AXES order
    global_batch: int = 1

    @property
    def devices(self) -> int:
        return self.data * self.pipeline * self.fsdp * self.tensor

    @property
    def shards(self) -> int:
        """Devices the batch is split over (data x fsdp)."""
        return self.data * self.fsdp

    @property
    def micro_batch(self) -> int:
        """Sequences per accumulation step, all devices together."""
        return self.global_batch // self.microbatches

    @property
    def stage_micro(self) -> int:
        """Pipeline microbatches per accumulation step (1 without a pipeline)."""
        return (self.pipe_micro or self.pipeline) if self.pipeline > 1 else 1

    @property
    def seqs_per_device(self) -> int:
        """Sequences one device holds in one pass through a layer (b)."""
        return max(1, self.micro_batch // self.stage_micro // self.shards)

    def degree(self, axis: str) -> int:
        return getattr(self, axis)

    def dcn_degree(self, axis: str) -> int:
        return self.dcn[AXES.index(axis)]

    def overrides(self) -> list[str]:
        """The `--config.*` flags that select this layout."""
        flags = [f"--config.mesh.{a}={self.degree(a)}" for a in AXES]
        flags += [f"--config.mesh.pipeline_repeats={self.repeats}",
                  f"--config.mesh.pipeline_microbatches={self.pipe_micro}"]
        flags += [f"--config.mesh.dcn.{a}={d}" for a, d in zip(AXES, self.dcn, strict=True) if d > 1]
        flags += [f"--config.train.global_batch={self.global_batch}",
                  f"--config.train.microbatches={self.microbatches}",
                  f"--config.model.remat={self.remat}", f"--config.train.loss_chunk={self.loss_chunk}"]
        return flags

    def apply(self, cfg):
        """Writes this layout into `cfg` (a ConfigDict, unlocked or locked) in place."""
        for a in AXES:
            cfg.mesh[a] = self.degree(a)
            cfg.mesh.dcn[a] = self.dcn_degree(a)
        cfg.mesh.pipeline_repeats, cfg.mesh.pipeline_microbatches = self.repeats, self.pipe_micro
        cfg.train.global_batch, cfg.train.microbatches = self.global_batch, self.microbatches
        cfg.model.remat, cfg.train.loss_chunk = self.remat, self.loss_chunk
        return cfg

    def short(self) -> str:
        """A compact name: d2 p4 f8 t4 r6 m16 mb27 full c1024 dcn(d2 p4)."""
        s = f"d{self.data} f{self.fsdp} t{self.tensor} p{self.pipeline}"
        if self.pipeline > 1:
            s += f"x{self.repeats} m{self.stage_micro}"
        s += f" mb{self.microbatches} {self.remat} c{self.loss_chunk}"
        dcn = " ".join(f"{a[0]}{d}" for a, d in zip(AXES, self.dcn, strict=True) if d > 1)
        return s + (f" dcn({dcn})" if dcn else "")


def from_config(cfg, degrees: dict) -> Layout:
    """The layout a (validated) config runs, given validate's resolved degrees."""
    dcn = tuple(int(cfg.mesh.get("dcn", {}).get(a, 1)) for a in AXES)
    return Layout(degrees["data"], degrees["pipeline"], degrees["fsdp"], degrees["tensor"],
                  cfg.train.microbatches, cfg.model.remat, cfg.train.loss_chunk,
                  int(cfg.mesh.get("pipeline_repeats", 1)), int(cfg.mesh.get("pipeline_microbatches", 0)),
                  dcn, cfg.train.global_batch)
