"""Atomic output helpers: results appear under their final name only when complete."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scfan.errors import OutputError


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    Works for files and for directories (the block creates whatever it needs at the yielded path).
    """
    final = Path(path)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{parent}: cannot create output directory ({exc.strerror})") from exc
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{parent}: output directory is not writable")
    tmp = _tmp_sibling(final)
    _remove(tmp)
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (reads two bytes, whatever the file's size)."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def is_bgzf(path: str | os.PathLike) -> bool:
    """Whether ``path`` is BGZF (bgzip): gzip with the ``BC`` extra subfield in its first member's header."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    return len(head) == 18 and head[:2] == b"\x1f\x8b" and bool(head[3] & 4) and head[12:14] == b"BC"


def read_utf8(path: str | os.PathLike) -> str:
    """The whole (small) text file, refusing bytes that are not UTF-8 with the line they are on."""
    from scfan.errors import InputFileError

    data = Path(path).read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputFileError(path, "a NUL byte; expected a plain-text file", line=data.count(b"\n", 0, nul) + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(path, f"byte 0x{data[exc.start]:02x} is not UTF-8 text; expected a plain-text file "
                             "(save it as UTF-8)", line=line) from exc


def open_text(path: str | os.PathLike):
    """Open a plain or gzip-compressed text file for reading, by content rather than by name."""
    return gzip.open(path, "rt") if is_gzip(path) else open(path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def deterministic_gzip(path: str | os.PathLike, data: bytes) -> None:
    """Write gzip data with a zero mtime and no file name so equal inputs give equal bytes."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(data)


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def scratch_dir(prefix: str = "scfan-") -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
