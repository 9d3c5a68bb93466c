"""Soak test: a run killed again and again (SIGKILL or SIGTERM at random moments) and restarted
until it finishes must end with metrics bitwise equal to an uninterrupted run.

  python benchmarks/soak.py --kills=20 --steps=3000 --workdir=/tmp/soak

Each life of the run is `llmjp-train` in its own process, killed after a random delay (from
just after start, through compilation, steps and checkpoint saves). A SIGTERM'd life must
exit with 75 after saving, a SIGKILL'd one just dies. Prints one JSON line: kills by signal
and by phase, steps redone after restarts, and whether the final metrics equal the
uninterrupted run's.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREEMPTED_EXIT_CODE = 75


def make_corpus(folder: str) -> dict:
    """Tokenizer and shards from the bundled sample corpus (as scripts/demo.sh makes them)."""
    sys.path.insert(0, ROOT)
    import glob

    from llmjp_jax.data.tokenize import tokenize_files
    from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer

    train_files = sorted(glob.glob(os.path.join(ROOT, "data", "sample", "train", "*.jsonl")))
    eval_files = sorted(glob.glob(os.path.join(ROOT, "data", "sample", "heldout", "*.jsonl")))
    os.makedirs(folder, exist_ok=True)
    tok = Tokenizer(train_tokenizer(train_files, os.path.join(folder, "spm"), vocab_size=4000))
    tokenize_files(train_files, os.path.join(folder, "train"), tok, docs_per_shard=300)
    tokenize_files(eval_files, os.path.join(folder, "eval"), tok)
    return {"train": os.path.join(folder, "train"), "eval": os.path.join(folder, "eval")}


def command(corpus: dict, workdir: str, steps: int) -> list[str]:
    settings = {
        "model.num_layers": 2, "model.hidden": 64, "model.ffn": 128, "model.num_heads": 4,
        "model.num_kv_heads": 2, "optim.warmup_steps": 5, "train.global_batch": 8,
        "train.seq_len": 64, "train.log_every": 1, "train.eval_every": 10, "train.keep_last": 2,
        "train.checkpoint_every": 5, "train.steps": steps, "data.train_dir": corpus["train"],
        "data.eval_dir": corpus["eval"], "mesh.data": 1, "mesh.fsdp": 2, "mesh.tensor": 1}
    return [sys.executable, "-m", "llmjp_jax.cli.train", "--config=configs/tiny.py",
            f"--workdir={workdir}", "--cpu_devices=2", *(f"--config.{k}={v}" for k, v in settings.items())]


def _env() -> dict:
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    return {**os.environ, "XLA_FLAGS": " ".join(flags), "JAX_PLATFORMS": "cpu"}


def _rows(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path, encoding="utf-8"):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line, left by a kill
            pass
    return rows


def _phase(log: str) -> str:
    text = open(log, errors="replace").read()
    if "Train step compiled" not in text:
        return "setup or compile"
    return "training"


def _fields(rows: list[dict]) -> list[tuple]:
    return [(r["step"], r.get("loss"), r.get("grad_norm"), r.get("lr"), r.get("eval_loss")) for r in rows]


def soak(corpus: dict, root: str, kills: int, steps: int, seed: int = 0, max_delay: float = 25.0,
         timeout: float = 600) -> dict:
    """Runs the uninterrupted reference, then the killed run; returns what happened."""
    rng = random.Random(seed)
    reference, chaos = os.path.join(root, "reference"), os.path.join(root, "chaos")
    for folder in (reference, chaos):
        shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(command(corpus, reference, steps), cwd=ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
    result = {"kills": 0, "by_signal": {"SIGKILL": 0, "SIGTERM": 0}, "by_phase": {},
              "steps_redone": 0, "lives": 0, "bad_exit_codes": []}
    start = time.time()
    while True:
        result["lives"] += 1
        log = os.path.join(root, f"life{result['lives']}.log")
        with open(log, "w") as out:
            proc = subprocess.Popen(command(corpus, chaos, steps), cwd=ROOT, env=_env(), stdout=out,
                                    stderr=subprocess.STDOUT)
        if result["kills"] < kills:
            try:
                proc.wait(timeout=rng.uniform(0.5, max_delay))
            except subprocess.TimeoutExpired:
                signum = rng.choice([signal.SIGKILL, signal.SIGTERM])
                logged = len(_rows(chaos))
                phase = _phase(log)
                proc.send_signal(signum)
                code = proc.wait(timeout=timeout)
                name = signal.Signals(signum).name
                result["kills"] += 1
                result["by_signal"][name] += 1
                result["by_phase"][phase] = result["by_phase"].get(phase, 0) + 1
                expected = -signal.SIGKILL if signum == signal.SIGKILL else PREEMPTED_EXIT_CODE
                if code != expected:
                    result["bad_exit_codes"].append({"signal": name, "phase": phase, "code": code})
                resumed = _resume_step(chaos)
                result["steps_redone"] += max(0, logged - resumed)
                continue
        code = proc.wait(timeout=timeout)
        if code != 0:
            result["bad_exit_codes"].append({"signal": None, "phase": "final", "code": code})
            break
        if len(_rows(chaos)) and _rows(chaos)[-1]["step"] == steps:
            break
    result["seconds"] = round(time.time() - start, 1)
    result["equal"] = _fields(_rows(chaos)) == _fields(_rows(reference))
    return result


def _resume_step(workdir: str) -> int:
    """The newest complete checkpoint, where the next life resumes."""
    folder = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(folder):
        return 0
    done = [int(n) for n in os.listdir(folder)
            if n.isdigit() and os.path.exists(os.path.join(folder, n, "commit_success.txt"))]
    return max(done, default=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--max_delay", type=float, default=25.0,
                        help="Each life is killed after a delay drawn from [0.5, this] seconds.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/llmjp-soak")
    args = parser.parse_args()
    corpus = make_corpus(os.path.join(args.workdir, "data"))
    print(json.dumps({"kills_asked": args.kills, "steps": args.steps, "seed": args.seed,
                      **soak(corpus, args.workdir, args.kills, args.steps, args.seed, args.max_delay)}))


if __name__ == "__main__":
    main()
