"""Launchers: scripts pass shellcheck; the SLURM script's command path joins two processes; the
TPU VM script issues the expected gcloud commands."""

import os
import random
import shutil
import stat
import subprocess

import pytest

from .conftest import ROOT, read_metrics

SCRIPTS = ["launch/slurm.sbatch", "launch/local.sh", "launch/tpu_vm.sh", "scripts/setup.sh",
           "scripts/demo.sh", "scripts/test.sh", "scripts/cpu_env.sh", ".ci/run"]

FAKE_SRUN = """#!/usr/bin/env bash
# Runs the command as 2 local tasks with the environment SLURM gives each task.
shift  # --kill-on-bad-exit=1
for i in 0 1; do
  SLURM_JOB_ID=$JOB_ID SLURM_STEP_NODELIST=localhost SLURM_NTASKS=2 SLURM_STEP_NUM_TASKS=2 \\
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 "$@" > "$LOGS/task$i.log" 2>&1 &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
exit $status
"""

FAKE_GCLOUD = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$LOGS/gcloud.log"
[ "$4" != describe ] || [ -n "${EXISTS:-}" ]
"""


def _executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_pass_shellcheck():
    out = subprocess.run(["shellcheck", "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_slurm_script_trains_with_two_tasks(corpus, tmp_path):
    _executable(tmp_path / "srun", FAKE_SRUN)
    # JAX derives the coordinator port from the job id: a random one avoids clashes.
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "LOGS": str(tmp_path),
           "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "JOB_ID": str(random.randrange(10_000, 99_999))}
    workdir = tmp_path / "run"
    overrides = ["--cpu_devices=2", "--config.train.steps=3", "--config.train.log_every=1",
                 "--config.optim.warmup_steps=1", "--config.model.num_layers=2",
                 "--config.train.seq_len=64", "--config.train.global_batch=8",
                 f"--config.data.train_dir={corpus['train']}", f"--config.data.eval_dir={corpus['eval']}"]
    out = subprocess.run(["bash", "launch/slurm.sbatch", "configs/tiny.py", str(workdir), *overrides],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    logs = [(tmp_path / f"task{i}.log").read_text() for i in range(2)]
    assert out.returncode == 0, out.stdout + out.stderr + logs[0][-3000:] + logs[1][-3000:]
    assert "JAX process 0 of 2" in logs[0] and "JAX process 1 of 2" in logs[1]
    assert [r["step"] for r in read_metrics(workdir)] == [1, 2, 3]


@pytest.mark.parametrize("code, requeued", [(75, True), (1, False), (0, False)])
def test_slurm_script_requeues_after_a_saved_preemption(tmp_path, code, requeued):
    """Exit 75 (saved after SIGTERM, which --signal asks for before the time limit) requeues."""
    _executable(tmp_path / "srun", f"#!/usr/bin/env bash\nexit {code}\n")
    _executable(tmp_path / "scontrol", '#!/usr/bin/env bash\necho "$*" >> "$LOGS/scontrol.log"\n')
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "LOGS": str(tmp_path),
           "SLURM_JOB_ID": "4242"}
    out = subprocess.run(["bash", "launch/slurm.sbatch", "configs/tiny.py", str(tmp_path / "run")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == code
    log = tmp_path / "scontrol.log"
    assert (log.read_text().split() if log.exists() else []) == (["requeue", "4242"] if requeued else [])
    assert "#SBATCH --signal=TERM@" in open(os.path.join(ROOT, "launch", "slurm.sbatch")).read()


def test_tpu_vm_script_commands(tmp_path):
    _executable(tmp_path / "gcloud", FAKE_GCLOUD)
    env = {**os.environ, "GCLOUD": str(tmp_path / "gcloud"), "LOGS": str(tmp_path)}

    def run(*args, **extra):
        return subprocess.run(["bash", "launch/tpu_vm.sh", *args], cwd=ROOT, env={**env, **extra},
                              capture_output=True, text=True, timeout=60)

    assert run("create", "pod", "zone-a", "v5p-16").returncode == 0
    assert run("create", "pod", "zone-a", "v5p-16", EXISTS="1").returncode == 0
    assert run("mount", "pod", "zone-a", "my-bucket").returncode == 0
    assert run("train", "pod", "zone-a", "configs/llmjp3/1.8b.py", "/gcs/b/run",
               "--config.optim.peak_lr=1e-4").returncode == 0
    assert run("bogus", "pod", "zone-a").returncode == 2
    calls = (tmp_path / "gcloud.log").read_text().splitlines()
    creates = [c for c in calls if " create " in c]
    assert len(creates) == 1 and "--accelerator-type=v5p-16" in creates[0]  # second call reused it
    mount, train = [c for c in calls if " ssh " in c]
    assert "--worker=all" in mount and "gcsfuse --implicit-dirs my-bucket /gcs/my-bucket" in mount
    assert "--worker=all" in train
    assert ".venv/bin/llmjp-train --config=configs/llmjp3/1.8b.py --workdir=/gcs/b/run" in train
    assert "--config.optim.peak_lr=1e-4" in train
