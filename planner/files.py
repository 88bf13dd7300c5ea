"""File identity and atomic replacement: a reader never sees half a file, a crash never leaves one."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from planner.errors import InputError


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_writable(target: str | os.PathLike) -> None:
    """Refuse, before any work is done, a file that could not be written: on a read-only file system, or in a
    folder (or under a parent folder to be created) that refuses writes."""
    path = Path(target)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or existing.is_dir() and os.access(existing, os.W_OK | os.X_OK) \
            or existing.is_file() and os.access(existing, os.W_OK):
        return
    readonly = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    raise InputError(f"cannot write here: {existing} is on a read-only file system" if readonly
                     else f"cannot write here: {existing} does not accept writes (permission denied)", path=str(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # read once at import, while no other thread can be changing the umask


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is synced and renamed over `target`, keeping the
    permissions of the file it replaces, or those a plain open() would have given a new one (mkstemp's own are
    owner-only)."""
    target = Path(target)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _FILE_MODE
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
