"""Atomic output helpers: results appear under their final name only when complete."""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import shutil
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
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, Exception) and not isinstance(exc, OutputError) and _out_of_space(exc):
            # h5py, polars and torch report a full disk in their own words and classes; say it once, plainly
            raise OutputError(f"{final}: no space left on device while writing it (the partial file was "
                              "removed); free space there or write elsewhere") from exc
        raise


_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a write that failed for lack of space or quota."""
    words = tuple(os.strerror(e).lower() for e in _OUT_OF_SPACE)
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_SPACE:
            return True
        text = str(exc).lower()
        if any(w in text for w in words) or f"errno = {errno.ENOSPC}" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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


#: The UTF-8 byte-order mark (U+FEFF) that Excel and Windows Notepad write at the start of a "UTF-8" file.
UTF8_BOM = b"\xef\xbb\xbf"


def read_utf8(path: str | os.PathLike) -> str:
    """The whole (small) text file, refusing bytes that are not UTF-8 with the line they are on.

    A leading UTF-8 byte-order mark (as Excel's "CSV UTF-8" writes) is dropped: it is an encoding signature, not
    text, and left in place it would become part of the first header name or JSON token.
    """
    from scfan.errors import InputFileError

    data = Path(path).read_bytes().removeprefix(UTF8_BOM)
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


def write_h5ad(adata, path: str | os.PathLike) -> None:
    """Write an AnnData as ``.h5ad``, atomically, with HDF5 writing into memory and Python writing the file.

    HDF5 that meets a full disk cannot close its file: it repeats the failed flush when the object is freed and
    can crash the interpreter at exit. Writing the image in memory keeps the disk away from HDF5, so a full disk
    is one ``OSError`` here (an :class:`OutputError` from :func:`atomic_path`). Same content as
    ``AnnData.write_h5ad`` (strings become categoricals, then anndata's own element writer).
    """
    import io

    import anndata as ad
    import h5py

    adata.strings_to_categoricals()
    if adata.raw is not None:
        adata.strings_to_categoricals(adata.raw.var)
    size = _approx_nbytes(adata)
    if size > IN_MEMORY_H5AD_LIMIT:
        # a large file (the all-cells steps of a big data set): an in-memory image would double the step's memory
        # (a million cells' counts alone are ~14 GB), so HDF5 writes the file itself, after a check that the disk
        # has room for it, which keeps the full-disk case a clear error
        final = Path(path)
        free = shutil.disk_usage(final.parent if final.parent.exists() else Path.cwd()).free
        if free < 1.1 * size:
            raise OutputError(f"{final}: no space left on device for it (about {size / 2**30:.1f} GiB needed, "
                              f"{free / 2**30:.1f} GiB free)")
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                ad.io.write_elem(f, "/", adata)
        return
    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        ad.io.write_elem(f, "/", adata)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(image.getbuffer())


#: ``.h5ad`` files estimated above this size are written by HDF5 directly (:func:`write_h5ad`)
IN_MEMORY_H5AD_LIMIT = 2 * 2**30


def _approx_nbytes(adata) -> int:
    """The bytes of an AnnData's arrays (X, layers, obsm, obsp, varm, varp; sparse: data + indices + indptr)."""
    import scipy.sparse as sp

    def nbytes(m) -> int:
        if sp.issparse(m):
            m = m.tocsr() if not hasattr(m, "indptr") else m
            return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)
        return int(getattr(m, "nbytes", 0))

    total = nbytes(adata.X) if adata.X is not None else 0
    for group in (adata.layers, adata.obsm, adata.obsp, adata.varm, adata.varp):
        total += sum(nbytes(v) for v in group.values())
    return total


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
