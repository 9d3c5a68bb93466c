"""Which host memory allocator this process runs with, and advice for CPU training.

XLA:CPU allocates each step's temporaries afresh (1.6 GB per step on the cpu_small benchmark).
glibc's malloc serves blocks that large with mmap and unmaps them on free, so every step
page-faults all of that memory in again: about 400,000 faults and 0.7 s of kernel time per
step there. An allocator that keeps freed memory, or glibc backing it with huge pages, removes
most of that cost (benchmarks/RESULTS.md). Neither can be switched on from inside a running
process, so the launcher's environment chooses (scripts/cpu_env.sh) and the run says which.
"""

import os

HUGETLB_TUNABLE = "glibc.malloc.hugetlb"
CPU_ENV_SCRIPT = "scripts/cpu_env.sh"


def current_allocator(maps_path: str = "/proc/self/maps", environ=None) -> str:
    """'jemalloc', 'tcmalloc', 'glibc (huge pages)' or 'glibc' ('unknown' off Linux)."""
    environ = os.environ if environ is None else environ
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("jemalloc", "tcmalloc"):
        if f"lib{name}" in maps:
            return name
    tunables = environ.get("GLIBC_TUNABLES", "")
    if any(t in (f"{HUGETLB_TUNABLE}=1", f"{HUGETLB_TUNABLE}=2") for t in tunables.split(":")):
        return "glibc (huge pages)"
    return "glibc"


def cpu_allocator_advice(allocator: str) -> str | None:
    """A hint for CPU runs on plain glibc malloc; None when nothing is to be gained."""
    if allocator != "glibc":
        return None
    return ("CPU run on plain glibc malloc: every step page-faults its temporaries in again. "
            f"`source {CPU_ENV_SCRIPT}` before starting makes steps 5-25% faster (huge pages, or "
            "jemalloc/tcmalloc where installed; benchmarks/RESULTS.md).")
