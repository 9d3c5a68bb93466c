"""Host allocator detection, and scripts/cpu_env.sh doing what it says on this machine."""

import os
import subprocess
import sys

import pytest

from llmjp_jax.train.allocator import cpu_allocator_advice, current_allocator

from .conftest import ROOT


def _maps(tmp_path, *libs):
    path = tmp_path / "maps"
    path.write_text("".join(f"7f00-7f01 r-xp 0 08:01 1 /usr/lib/{lib}\n" for lib in libs))
    return str(path)


def test_detects_preloaded_allocators_and_the_glibc_tunable(tmp_path):
    plain = _maps(tmp_path, "libc.so.6", "libm.so.6")
    assert current_allocator(plain, {}) == "glibc"
    assert current_allocator(plain, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}) == "glibc (huge pages)"
    assert current_allocator(plain, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == "glibc"
    assert current_allocator(_maps(tmp_path, "libjemalloc.so.2", "libc.so.6"), {}) == "jemalloc"
    assert current_allocator(_maps(tmp_path, "libtcmalloc_minimal.so.4"), {}) == "tcmalloc"
    assert current_allocator(str(tmp_path / "absent"), {}) == "unknown"


def test_advice_only_for_plain_glibc():
    assert "scripts/cpu_env.sh" in cpu_allocator_advice("glibc")
    for other in ("jemalloc", "tcmalloc", "glibc (huge pages)", "unknown"):
        assert cpu_allocator_advice(other) is None


_FAULTS = """
import resource, jax
import jax.numpy as jnp
from llmjp_jax.train.allocator import current_allocator
f = jax.jit(lambda x: x[:, None] * x[None, :])  # a fresh 256 MB buffer per call
x = jnp.ones(8192)
f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    f(x).block_until_ready()
print(current_allocator(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(allocator: str):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GLIBC_TUNABLES", "XLA_FLAGS")}
    command = ("source scripts/cpu_env.sh && " if allocator else "") + f'"{sys.executable}" -c "$PROGRAM"'
    env.update(PROGRAM=_FAULTS, LLMJP_ALLOCATOR=allocator or "glibc")
    out = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()[-1].rsplit(maxsplit=1)
    return out[0], int(out[1])


def _huge_pages_possible() -> bool:
    """glibc >= 2.35 (the hugetlb tunable) and transparent huge pages not switched off."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = "[never]" not in f.read()
    except (OSError, ValueError, AttributeError):
        return False
    return name == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 35) and thp


@pytest.mark.skipif(not _huge_pages_possible(), reason="needs glibc >= 2.35 and transparent huge pages")
def test_cpu_env_cuts_the_page_faults_of_each_step():
    """Plain glibc faults a fresh 256 MB buffer in on every call; with cpu_env.sh sourced
    (glibc path) huge pages back it: up to 512x fewer faults."""
    plain_name, plain = _faults("")
    tuned_name, tuned = _faults("glibc")
    assert (plain_name, tuned_name) == ("glibc", "glibc (huge pages)")
    assert plain > 3 * 60_000  # 3 calls x 256 MB in 4 KiB pages
    assert tuned < plain / 20
