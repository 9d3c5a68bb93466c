"""What an evaluation during training measures: the loss on each held-out set, and
multiple-choice accuracies.

`data.eval = {name: dir}` logs `eval_loss/<name>` per set and `eval_loss`, the token-weighted
mean over all sets (their cross-entropy sums over their target counts, so a large set weighs
more); `data.eval_dir` alone is one set logged as `eval_loss` (data.eval, when given, replaces
it). `train.eval_tasks = {name: task.jsonl}` logs `mc_acc/<name>` (length-normalised) and
`mc_acc_raw/<name>` (llmjp_jax/multiple_choice.py). Every set and task is checked (release
level, tokenizer, format) before anything is compiled.
"""

import dataclasses

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from llmjp_jax.data.loader import eval_batches
from llmjp_jax.data.manifest import ShardError, load_manifest
from llmjp_jax.data.mixture import check_level
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.errors import ConfigError
from llmjp_jax.log import get_logger
from llmjp_jax.parallel.distributed import global_min
from llmjp_jax.train import rundir
from llmjp_jax.train.multiple_choice import encode_task, evaluate_task, load_task, make_scorer
from llmjp_jax.train.step import make_eval_step

log = get_logger()


@dataclasses.dataclass(frozen=True)
class HeldOut:
    name: str  # "": data.eval_dir, logged as eval_loss alone
    directory: str
    setting: str  # the setting that names it, for messages


def held_out_sets(data_cfg) -> list[HeldOut]:
    """data.eval's named sets (sorted by name), else data.eval_dir as one unnamed set, else none."""
    named = dict(data_cfg.get("eval") or {})
    for name, directory in named.items():
        if not (name and isinstance(directory, str) and directory):
            raise ConfigError(f"data.eval.{name}={directory!r}: give each held-out set as "
                              "name: folder made by llmjp-tokenize.")
    if named:
        if data_cfg.get("eval_dir"):
            log.info("data.eval names %d held-out sets; they replace data.eval_dir=%s.",
                     len(named), data_cfg.eval_dir)
        return [HeldOut(name, named[name], f"data.eval.{name}") for name in sorted(named)]
    eval_dir = data_cfg.get("eval_dir")
    return [HeldOut("", eval_dir, "data.eval_dir")] if eval_dir else []


def check_held_out(held_out: HeldOut, train_tokenizer: dict, vocab_rows: int | None = None,
                   verify: str = "size") -> dict:
    """The held-out set's manifest, checked: its shards (as load_manifest checks them), its level
    (LZ is never evaluated) and its tokenizer, which must be the training data's, or its loss means
    nothing (the same vocabulary size is not enough)."""
    manifest = load_manifest(held_out.directory, vocab_rows, verify, held_out.setting)
    check_level(held_out.setting, manifest.get("release_level", ""), training=False)
    made_with = manifest["tokenizer"]
    if made_with["sha256"] != train_tokenizer["sha256"]:
        raise ShardError(
            f"{held_out.setting}={held_out.directory} was tokenized with {made_with['path']} (sha256 "
            f"{made_with['sha256'][:12]}...), the training data with {train_tokenizer['path']} "
            f"(sha256 {train_tokenizer['sha256'][:12]}...): tokenize the held-out text with the "
            f"training tokenizer, or set {held_out.setting} to a set made with it.")
    return manifest


def loss_metrics(sums: dict[str, tuple[float, float]]) -> dict[str, float]:
    """{name: (cross-entropy sum, target count)} -> eval_loss/<name> per named set, and eval_loss:
    all sums over all counts (an unnamed set, data.eval_dir, gives eval_loss alone)."""
    row = {f"eval_loss/{name}": ce / count for name, (ce, count) in sums.items() if name}
    total_ce, total_count = (sum(v[i] for v in sums.values()) for i in (0, 1))
    return {"eval_loss": total_ce / total_count, **row}


class Evaluator:
    """evaluator(params) -> the metrics of one evaluation (see the module docstring)."""

    def __init__(self, run, held_out: list[HeldOut], tasks: dict[str, str]):
        t, verify = run.cfg.train, run.cfg.data.get("verify_shards", "size")
        manifests = [check_held_out(s, run.tokenizer, run.model_cfg.padded_vocab, verify)
                     for s in held_out]
        self.batches = {s.name: self._batches(run, s, m) for s, m in zip(held_out, manifests)}
        self.evaluate = jax.jit(make_eval_step(run.spec.graphdef, run.pipeline, t.loss_chunk))
        self.tasks = _encoded_tasks(run, tasks)
        replicated = NamedSharding(run.mesh, PartitionSpec())
        self.score = make_scorer(run.spec.graphdef, replicated) if self.tasks else None
        self.place = lambda x: jax.make_array_from_process_local_data(replicated, x)
        self.rows = t.global_batch  # a multiple of the batch-sharding degree (config.validate)

    @staticmethod
    def _batches(run, s: HeldOut, manifest: dict) -> list:
        t, data = run.cfg.train, run.cfg.data
        local = eval_batches(s.directory, t.seq_len, t.global_batch, t.eval_batches, jax.process_index(),
                             jax.process_count(), packing=data.packing, shards=data.loader_shards,
                             setting=s.setting, manifest=manifest)
        # Each process's loader shards may run out after a different number of batches; every
        # process must run the same number of (collective) eval steps per set: the fewest, which
        # is what a single process reading all shards would get.
        count = global_min(len(local))
        return [run.globalise(b) for b in local[:count]]

    def __call__(self, params) -> dict[str, float]:
        row = loss_metrics({name: self._sums(params, b) for name, b in self.batches.items()}
                           ) if self.batches else {}
        for name, task in self.tasks.items():
            acc = evaluate_task(self.score, params, task, self.rows, self.place)
            row.update({f"mc_acc/{name}": acc["acc_norm"], f"mc_acc_raw/{name}": acc["acc"]})
        return row

    def _sums(self, params, batches) -> tuple[float, float]:
        # One batch at a time, summed on the host: many evaluations in flight at once (each
        # with its cross-process all-reduce) deadlocked two CPU processes.
        sums = np.array([jax.device_get(self.evaluate(params, b)) for b in batches], np.float64)
        return float(sums[:, 0].sum()), float(sums[:, 1].sum())


def _encoded_tasks(run, tasks: dict[str, str]) -> dict:
    if not tasks:
        return {}
    path = rundir.tokenizer_path(run.workdir) or run.tokenizer["path"]
    tokenizer = Tokenizer(path)
    return {name: encode_task(load_task(tasks[name], f"train.eval_tasks.{name}"), tokenizer)
            for name in sorted(tasks)}


def make_evaluator(run) -> Evaluator | None:
    """The run's evaluator, None when nothing is to be evaluated (or train.eval_every=0)."""
    held_out, tasks = held_out_sets(run.cfg.data), dict(run.cfg.train.get("eval_tasks") or {})
    if not run.cfg.train.eval_every or not (held_out or tasks):
        return None
    return Evaluator(run, held_out, tasks)
