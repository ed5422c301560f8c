"""Genome access (lazily opened FASTA), one-hot encoding and reverse complement, chromosome-name checks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from scfan.errors import ChromosomeNameError, InputFileError

log = logging.getLogger(__name__)

ALPHABET = "ACGT"
# Lookup from ASCII byte to channel index; anything that is not A/C/G/T (either case) maps to 4 (all-zero column).
_LUT = np.full(256, 4, dtype=np.int64)
for _i, _b in enumerate(ALPHABET):
    _LUT[ord(_b)] = _i
    _LUT[ord(_b.lower())] = _i


def one_hot(seq: str | bytes) -> np.ndarray:
    """One-hot encode a DNA sequence as a ``(4, L)`` float32 array (rows A, C, G, T; N and others all zero)."""
    raw = np.frombuffer(seq.encode() if isinstance(seq, str) else seq, dtype=np.uint8)
    idx = _LUT[raw]
    out = np.zeros((5, raw.size), dtype=np.float32)
    out[idx, np.arange(raw.size)] = 1.0
    return out[:4]


def one_hot_batch(seqs: Iterable[str | bytes]) -> np.ndarray:
    """Stack equal-length sequences into ``(N, 4, L)``."""
    arrs = [one_hot(s) for s in seqs]
    if not arrs:
        return np.zeros((0, 4, 0), dtype=np.float32)
    return np.stack(arrs)


def reverse_complement_onehot(x: np.ndarray) -> np.ndarray:
    """Reverse complement of one-hot ``(..., 4, L)``: flip channels (A<->T, C<->G) and positions."""
    return np.ascontiguousarray(x[..., ::-1, ::-1])


_COMP = str.maketrans("ACGTacgtNn", "TGCAtgcaNn")


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMP)[::-1]


def fai_path(fasta: Path) -> Path:
    return Path(str(fasta) + ".fai")


def read_chrom_sizes(path: str | Path) -> dict[str, int]:
    """Read a ``.fai`` or ``chrom.sizes`` file (name TAB length ...)."""
    p = Path(path)
    sizes: dict[str, int] = {}
    with open(p) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                raise InputFileError(p, "expected 'name<TAB>length'", line=n)
            try:
                sizes[parts[0]] = int(parts[1])
            except ValueError as exc:
                raise InputFileError(p, f"length {parts[1]!r} is not an integer", line=n) from exc
    return sizes


class Genome:
    """A FASTA genome opened once per process; sequences fetched by 0-based half-open coordinates.

    A missing ``.fai`` is built (next to the FASTA if writable); out-of-range parts are padded with ``N``.
    """

    def __init__(self, fasta: str | Path):
        self.path = Path(fasta)
        if not self.path.is_file():
            raise InputFileError(self.path, "genome FASTA not found")
        if not fai_path(self.path).exists():
            log.info("%s: no .fai index; building it", self.path)
        import pyfaidx  # here, so that code needing only the flat genome arrays runs without it (GPU benchmark)

        from scfan._io import is_bgzf, is_gzip

        if is_gzip(self.path) and not is_bgzf(self.path):
            raise InputFileError(self.path, "gzip-compressed but not with bgzip, so it cannot be indexed; expected "
                                 "an uncompressed or bgzip-compressed FASTA (recompress: zcat FILE | bgzip > FILE.gz)")

        try:
            self._fa = pyfaidx.Fasta(str(self.path), as_raw=True, sequence_always_upper=True, rebuild=False)
        except (pyfaidx.FastaIndexingError, ValueError) as exc:
            raise InputFileError(self.path, f"cannot index FASTA ({exc}); expected an uncompressed or "
                                 "bgzip-compressed FASTA (index with: samtools faidx FILE)") from exc
        except OSError as exc:
            raise InputFileError(self.path, f"cannot build the .fai index ({exc.strerror}); "
                                 "create it with: samtools faidx FILE") from exc
        self.sizes: dict[str, int] = {name: len(rec) for name, rec in self._fa.records.items()}

    @property
    def chroms(self) -> list[str]:
        return list(self.sizes)

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Sequence of ``chrom[start:end]`` (uppercase), N-padded beyond the chromosome."""
        if chrom not in self.sizes:
            raise ChromosomeNameError(f"{self.path}: no chromosome {chrom!r} (has {', '.join(self.chroms[:10])})")
        size = self.sizes[chrom]
        lo, hi = max(start, 0), min(end, size)
        core = self._fa[chrom][lo:hi] if hi > lo else ""
        return "N" * (lo - start) + core + "N" * (end - hi) if (lo != start or hi != end) else core

    def one_hot(self, chrom: str, start: int, end: int) -> np.ndarray:
        return one_hot(self.fetch(chrom, start, end))

    def close(self) -> None:
        self._fa.close()

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _alt_name(name: str) -> str:
    return name[3:] if name.startswith("chr") else "chr" + name


def check_chrom_names(reference: tuple[str, Iterable[str]], others: Mapping[str, Iterable[str]]) -> None:
    """Fail when an input uses chromosome names absent from the reference (e.g. ``1`` vs ``chr1``).

    ``reference`` is ``(label, names)``; ``others`` maps each input's label (a file path) to its names.
    The error says which files and names disagree and suggests the fix.
    """
    ref_label, ref_names = reference
    ref = set(ref_names)
    problems = []
    for label, names in others.items():
        missing = sorted(set(names) - ref)
        if not missing:
            continue
        fixable = [m for m in missing if _alt_name(m) in ref]
        hint = ""
        if fixable and len(fixable) == len(missing):
            if fixable[0].startswith("chr"):
                hint = " — the reference has no 'chr' prefix: strip it (e.g. sed 's/^chr//')"
            else:
                hint = " — the reference uses 'chr' prefixes: add them (e.g. awk '{print \"chr\"$0}')"
        shown = ", ".join(missing[:5]) + (f" … ({len(missing)} in all)" if len(missing) > 5 else "")
        problems.append(f"{label} has chromosome(s) {shown} not in {ref_label}{hint}")
    if problems:
        raise ChromosomeNameError("; ".join(problems))
