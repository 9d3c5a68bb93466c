"""Failures that need a plain explanation: device memory exhausted, disk full."""

import contextlib
import errno


def out_of_memory(error: BaseException) -> bool:
    """Device memory exhausted (XLA's RESOURCE_EXHAUSTED), but not a full disk, which
    tensorstore reports with the same status code."""
    text = str(error)
    return ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text) and not disk_full(error)


def disk_full(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


class DiskFullError(OSError):
    def __init__(self, workdir: str, error: BaseException):
        super().__init__(
            errno.ENOSPC,
            f"The disk holding {workdir} is full (No space left on device): {type(error).__name__}: "
            f"{error}. Checkpoints that were complete before stay intact and a restart resumes "
            f"from the newest of them. Free space there, lower train.keep_last, or move the run to "
            f"a larger disk (copy the whole --workdir).")


def memory_advice(compiled, train=None) -> str:
    """What to change when the step does not fit, with XLA's plan when the step compiled (and the
    batch settings, `train`: the config's train section)."""
    plan = ""
    if compiled is not None and hasattr(compiled, "memory_analysis"):
        m = compiled.memory_analysis()
        plan = (f" XLA planned {m.argument_size_in_bytes / 2**30:.2f} GiB of arguments (parameters, "
                f"optimizer state, batch) and {m.temp_size_in_bytes / 2**30:.2f} GiB of temporaries "
                f"per device.")
    return ("The train step does not fit in device memory." + plan + " To need less per device: "
            "raise train.microbatches (gradient accumulation), use model.remat='full', set "
            "train.loss_chunk (e.g. 1024), or spread the model over more devices with mesh.fsdp, "
            "mesh.tensor or mesh.pipeline; or train on less per step: " + _batch(train)
            + ". `python benchmarks/aot.py --config=... --devices=N` shows "
            "the plan for a layout without running it.")


def _batch(train) -> str:
    if train is None:
        return "lower train.global_batch or train.seq_len"
    return (f"lower train.global_batch={train.global_batch} or train.seq_len={train.seq_len} "
            f"({train.global_batch} x {train.seq_len} tokens per step now)")


@contextlib.contextmanager
def named_disk_full(workdir: str):
    """Re-raises a full disk, however deep in orbax or tensorstore, as DiskFullError."""
    try:
        yield
    except Exception as e:
        if disk_full(e):
            raise DiskFullError(workdir, e) from e
        raise


class MemoryAdvice:
    """A context whose exhausted device memory becomes a MemoryError saying what to change; set
    `compiled` once the step is compiled, so the advice can quote XLA's plan."""

    def __init__(self, train):
        self.train, self.compiled = train, None

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is not None and isinstance(error, Exception) and out_of_memory(error):
            raise MemoryError(memory_advice(self.compiled, self.train)) from error
        return False
