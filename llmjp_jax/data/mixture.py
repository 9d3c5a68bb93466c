"""Training mixtures: subsets with repeat counts and LLM-jp release levels.

A subset's share of training tokens is tokens x repeats (its manifest gives the
tokens). One pass of the mixture holds every subset exactly `repeats` times
(a fractional part takes a fixed random part of the subset), concatenated and
shuffled globally with Grain, so the proportions hold exactly per pass rather
than only in expectation.
"""

import dataclasses
import math

import grain

from llmjp_jax.data.manifest import load_manifest
from llmjp_jax.data.megatron import MegatronDataset
from llmjp_jax.data.megatron_subset import open_megatron
from llmjp_jax.errors import UserError

TRAINABLE_LEVELS = ("L1", "L2", "L3")
EVAL_ONLY_LEVEL = "LX"
NEVER_LEVEL = "LZ"


@dataclasses.dataclass(frozen=True)
class Subset:
    name: str
    directory: str
    repeats: float
    manifest: dict
    megatron: tuple[MegatronDataset, ...] = ()  # a Megatron subset's datasets (data/megatron_subset.py)

    @property
    def level(self) -> str:
        return self.manifest.get("release_level", "")

    @property
    def tokens(self) -> int:
        return self.manifest["tokens"]


def _subset(name: str, spec, vocab_rows: int | None, verify: str, setting: str) -> Subset:
    repeats = float(spec.get("repeats", 1.0))
    if not (repeats > 0 and math.isfinite(repeats)):
        raise UserError(f"data.mixture.{name}.repeats={repeats} must be positive (0: leave it out).")
    if spec.get("megatron"):
        manifest, datasets = open_megatron(name, spec, vocab_rows, verify)
        return Subset(name, spec["megatron"], repeats, manifest, tuple(datasets))
    manifest = load_manifest(spec["dir"], vocab_rows, verify, setting)
    subset = Subset(name, spec["dir"], repeats, manifest)
    declared = spec.get("level")
    if declared and declared != subset.level:
        raise UserError(f"data.mixture.{name}.level={declared!r} but the manifest in {spec['dir']} "
                         f"says {subset.level!r}.")
    return subset


def check_level(name: str, level: str, training: bool):
    """LZ is refused everywhere; LX may only be evaluated; L1..L3 may train."""
    if level == NEVER_LEVEL:
        raise UserError(f"Subset {name!r} has release level LZ (no use at all): remove it.")
    if training and level not in TRAINABLE_LEVELS:
        raise UserError(f"Subset {name!r} has release level {level!r}; only {TRAINABLE_LEVELS} may "
                         "be trained on (LX is evaluation only): remove it from data.mixture.")


def load_mixture(data_cfg, vocab_rows: int | None = None) -> list[Subset]:
    """The training subsets from `data.mixture`, or `data.train_dir` as a single subset."""
    mixed = bool(data_cfg.get("mixture"))
    specs = dict(data_cfg.mixture) if mixed else {"train": {"dir": data_cfg.train_dir}}
    verify = data_cfg.get("verify_shards", "size")
    specs = _without_left_out(specs) if mixed else specs
    subsets = [_subset(name, spec, vocab_rows, verify,
                       f"data.mixture.{name}.dir" if mixed else "data.train_dir")
               for name, spec in sorted(specs.items())]
    for s in subsets:
        check_level(s.name, s.level, training=True)
    tokenizers = {s.manifest["tokenizer"]["sha256"] for s in subsets}
    if len(tokenizers) > 1:
        shown = ", ".join(f"{s.name}: {s.manifest['tokenizer']['sha256'][:12]}" for s in subsets)
        raise UserError(f"The mixture's subsets were tokenized with different tokenizers ({shown}).")
    return subsets


def _without_left_out(specs: dict) -> dict:
    """repeats=0 leaves a subset out of this run (an ablation's "off" level); its folder is not read."""
    kept = {name: spec for name, spec in specs.items() if float(spec.get("repeats", 1.0)) != 0}
    if not kept:
        zero = ", ".join(f"data.mixture.{name}.repeats=0" for name in sorted(specs))
        raise UserError(f"{zero}: that leaves out every subset; at least one must train.")
    return kept


def mixture_table(subsets: list[Subset]) -> str:
    effective = [s.tokens * s.repeats for s in subsets]
    total = sum(effective)
    lines = [f"{'subset':<20} {'level':<5} {'lang':<5} {'tokens':>15} {'repeats':>8} "
             f"{'x repeats':>15} {'share':>7}"]
    for s, eff in zip(subsets, effective):
        lines.append(f"{s.name:<20} {s.level:<5} {s.manifest.get('language', ''):<5} {s.tokens:>15,} "
                     f"{s.repeats:>8g} {int(eff):>15,} {100 * eff / total:>6.2f}%")
    lines.append(f"{'total':<20} {'':<5} {'':<5} {sum(s.tokens for s in subsets):>15,} {'':>8} "
                 f"{int(total):>15,} {100:>6.2f}%")
    return "\n".join(lines)


def one_pass(subsets: list[Subset], documents, seed: int) -> grain.MapDataset:
    """Every subset `repeats` times (fraction: a seeded random part), concatenated."""
    parts = []
    for index, s in enumerate(subsets):
        docs = documents(s)
        whole, fraction = int(math.floor(s.repeats)), s.repeats - math.floor(s.repeats)
        if whole:
            parts.append(docs.repeat(whole))
        extra = int(round(fraction * len(docs)))
        if extra:
            parts.append(docs.shuffle(seed=seed + 7919 * (index + 1))[:extra])
    return grain.MapDataset.concatenate(parts)
