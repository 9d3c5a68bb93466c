"""File primitives shared by the data and run folders: atomic, durable writes and content hashes."""

import hashlib
import json
import os


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str, text: str):
    """Writes `text` to `path` atomically and durably: a reader sees the old file or the whole new one."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def write_json(path: str, obj: dict, indent: int | None = None):
    write_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False))


def read_json(path: str) -> dict | None:
    """The file's content; None if it is missing or unreadable (as after a crash of the machine)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def fsync_dir(folder: str):
    fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def with_default_mode(path: str):
    """Gives a file the mode a plain open() would (0666 less the umask), like its neighbours."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
