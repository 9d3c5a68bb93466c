"""`rejects.jsonl`: the input lines that `on_bad_input="skip"` left out, so that none is lost silently."""

import json
import os

from llmjp_jax.data.readers import BAD_KINDS, BadInputError

FILE, RAW_CHARS = "rejects.jsonl", 1000


class RejectLog:
    """Writes each skipped line to `<folder>/rejects.jsonl` and counts them by kind.

    Disabled (on_bad_input="error"), it writes nothing and removes a stale rejects file left
    by an earlier run, so the folder never shows rejects that this run did not make.
    """

    def __init__(self, folder: str, enabled: bool):
        self.path, self.enabled = os.path.join(folder, FILE), enabled
        self.by_reason = dict.fromkeys(BAD_KINDS, 0)
        self._file = None

    def __enter__(self):
        if self.enabled:
            self._file = open(self.path, "w", encoding="utf-8")
        elif os.path.exists(self.path):
            os.remove(self.path)
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()

    def add(self, error: BadInputError):
        raw = error.raw.rstrip(b"\r\n").decode("utf-8", errors="replace")[:RAW_CHARS]
        record = {"file": os.path.abspath(error.path), "line": error.line, "reason": error.detail,
                  "kind": error.kind, "raw": raw}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.by_reason[error.kind] += 1


def summary(by_reason: dict[str, int], enabled: bool) -> dict:
    """The manifest's "rejected" entry."""
    return {"count": sum(by_reason.values()), "by_reason": by_reason, "file": FILE if enabled else None}
