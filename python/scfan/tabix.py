"""Whether a tabix index (``.tbi``) belongs to the bgzip file beside it, judged by content, not by mtime.

htslib calls an index stale when it is older than its data file, but object stores and staging (S3, AWS Batch,
Nextflow's staging) do not keep the order of mtimes, so a good index can look old and a stale one new. Instead,
the index's own record of where each contig's records lie is checked against the file:

* the last record of the last contig must end exactly where the file's data ends (one block read), and
* at the offset where the index says each contig begins there must be the start of a line of that contig
  (one block read per contig).

A file rewritten after indexing, or an index of another file, fails one of these unless the new file has the
same compressed length and every contig starts at the same byte with the same name: cheap (a few block reads
for a file of any size) and, for real rewrites, sound.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

# The 28-byte empty block that ends a BGZF file (SAM/BAM specification, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_META_BIN = 37450  # htslib's pseudo-bin of per-contig statistics (not a genomic bin)


class IndexMismatch(Exception):
    """The index does not describe this file (the message says where they disagree)."""


class TruncatedData(IndexMismatch):
    """The file ends without bgzip's end-of-file block, before records its index lists: it was cut short."""


@dataclass(frozen=True)
class ContigSpan:
    name: str
    begin: int  # virtual offset of the contig's first record
    end: int  # virtual offset just after its last record


def read_tbi_spans(tbi: str | Path) -> list[ContigSpan]:
    """Contigs of a ``.tbi`` in file order, each with the virtual offsets its records span (from every bin's
    chunks). Raises ``IndexMismatch`` for a file that is not a tabix index."""
    try:
        data = gzip.decompress(Path(tbi).read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise IndexMismatch(f"the index {Path(tbi).name} is not bgzip-compressed ({exc})") from exc
    if data[:4] != b"TBI\x01":
        raise IndexMismatch(f"{Path(tbi).name} is not a tabix index (no TBI magic)")
    try:
        n_ref = struct.unpack_from("<i", data, 4)[0]
        l_nm = struct.unpack_from("<i", data, 32)[0]
        names = data[36:36 + l_nm].split(b"\0")[:n_ref]
        pos = 36 + l_nm
        spans = []
        for name in names:
            (n_bin,) = struct.unpack_from("<i", data, pos)
            pos += 4
            begin, end = None, None
            for _ in range(n_bin):
                bin_id, n_chunk = struct.unpack_from("<Ii", data, pos)
                pos += 8
                chunks = struct.unpack_from(f"<{2 * n_chunk}Q", data, pos)
                pos += 16 * n_chunk
                if bin_id == _META_BIN or not chunks:
                    continue
                begin = min(chunks[0::2]) if begin is None else min(begin, *chunks[0::2])
                end = max(chunks[1::2]) if end is None else max(end, *chunks[1::2])
            (n_intv,) = struct.unpack_from("<i", data, pos)
            pos += 4 + 8 * n_intv
            if begin is not None:
                spans.append(ContigSpan(name.decode(), begin, end))
    except (struct.error, UnicodeDecodeError) as exc:
        raise IndexMismatch(f"the index {Path(tbi).name} is truncated or corrupt ({exc})") from exc
    return spans


def _block(fh, coffset: int) -> tuple[bytes, int]:
    """The decompressed BGZF block at file offset ``coffset`` and its compressed size."""
    fh.seek(coffset)
    head = fh.read(18)
    if len(head) < 18 or head[:4] != b"\x1f\x8b\x08\x04" or head[12:14] != b"BC":
        raise IndexMismatch(f"there is no bgzip block at byte {coffset}")
    bsize = struct.unpack_from("<H", head, 16)[0] + 1
    body = fh.read(bsize - 18)
    try:
        return zlib.decompress(body[:-8], -15), bsize
    except zlib.error as exc:
        raise IndexMismatch(f"the bgzip block at byte {coffset} does not decompress ({exc})") from exc


def check_index_belongs(path: str | Path, tbi: str | Path) -> None:
    """Raise ``IndexMismatch`` unless the ``.tbi`` describes ``path`` (see the module docstring)."""
    spans = read_tbi_spans(tbi)
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(size - len(BGZF_EOF), 0))
        data_end = size - len(BGZF_EOF) if fh.read() == BGZF_EOF else size
        if not spans:  # the index of a file without records: this file must have none either (first block)
            text = _block(fh, 0)[0] if data_end > 0 else b""
            if any(ln.strip() and not ln.startswith(b"#") for ln in text.split(b"\n")):
                raise IndexMismatch("the index lists no records, but the file has some")
            return
        coffset, uoffset = spans[-1].end >> 16, spans[-1].end & 0xFFFF
        # the end is written either as the start of the block after the data or as the end of the last data block
        ends_there = coffset == data_end and uoffset == 0
        if not ends_there and coffset < data_end:
            try:
                text, bsize = _block(fh, coffset)
                ends_there = coffset + bsize == data_end and uoffset == len(text)
            except IndexMismatch:
                ends_there = False
        if not ends_there and data_end == size and spans[-1].end >> 16 > data_end:
            raise TruncatedData(f"the file ends at byte {size} without bgzip's end-of-file block, but its index "
                                f"lists records up to byte {spans[-1].end >> 16}")
        if not ends_there:
            raise IndexMismatch(f"the index says the records end at byte {coffset} (+{uoffset}), but the file's "
                                f"data ends at byte {data_end}")
        for span in spans:
            coffset, uoffset = span.begin >> 16, span.begin & 0xFFFF
            if coffset >= data_end:
                raise IndexMismatch(f"the index places {span.name} at byte {coffset}, beyond the file's data")
            try:
                text, bsize = _block(fh, coffset)
            except IndexMismatch as exc:
                raise IndexMismatch(f"the index places {span.name} at byte {coffset}, but {exc}") from exc
            at_line_start = uoffset == 0 or text[uoffset - 1:uoffset] == b"\n"
            line = text[uoffset:]
            while b"\n" not in line and coffset + bsize < data_end and len(line) < 1 << 16:
                coffset += bsize  # the line goes on in the next block
                more, bsize = _block(fh, coffset)
                line += more
            line = line.split(b"\n", 1)[0]
            if not at_line_start or line.split(b"\t", 1)[0] != span.name.encode():
                found = line[:40].decode(errors="replace")
                raise IndexMismatch(f"where the index says {span.name} begins, the file has "
                                    f"{'the middle of a line' if not at_line_start else 'a line'} {found!r}")
