"""Genome access (lazily opened FASTA), chromosome sizes, and chromosome-name checks (sequence encoding:
:mod:`scfan.bulk.inputs`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from scfan.errors import ChromosomeNameError, InputFileError, ScfanError

log = logging.getLogger(__name__)

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
            parts = line.rstrip("\r\n").split("\t")
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

    def close(self) -> None:
        self._fa.close()

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _alt_name(name: str) -> str:
    return name[3:] if name.startswith("chr") else "chr" + name


PRIMARY_CHROMOSOMES: tuple[str, ...] = tuple([f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM"])
_PRIMARY = frozenset(PRIMARY_CHROMOSOMES) | {c[3:] for c in PRIMARY_CHROMOSOMES} | {"MT", "chrMT"}
# chr1 length -> build: the one number that tells GRCh38 from hg19 whatever the naming (UCSC, Ensembl, NCBI)
CHR1_LENGTH_BUILDS = {248_956_422: "GRCh38", 249_250_621: "hg19"}
_BUILD_LENGTHS = {b: n for n, b in CHR1_LENGTH_BUILDS.items()}


def is_primary_chromosome(name: str) -> bool:
    """Whether ``name`` is a primary human chromosome: chr1–22, X, Y, M (or MT), with or without ``chr``.

    Parameters
    ----------
    name : str
        A contig name, e.g. ``chr1``, ``1``, ``chrM``, ``MT``, ``chr1_KI270706v1_random``, ``EBV``.

    Returns
    -------
    bool
        False for unplaced, unlocalised, alternate, decoy, viral and HLA contigs.
    """
    return name in _PRIMARY


def primary_chromosomes(names: Iterable[str]) -> list[str]:
    """The primary chromosomes among ``names`` (chr1–22, X, Y, M and their no-``chr`` forms), in input order.

    Genome files (``.fai``, chrom.sizes, FASTA, bigWig) of GRCh38 list besides them ``_random``, ``chrUn_``,
    ``_alt``, ``_fix``, ``EBV``, ``HLA-`` and ``KI``/``GL`` contigs; a command reading a genome can keep only
    these names by default (``--chroms primary``).

    Parameters
    ----------
    names : iterable of str
        Contig names (a mapping of name -> length works too).

    Returns
    -------
    list of str
        The primary ones, in the order given; empty for a genome without human-style names.
    """
    return [n for n in names if n in _PRIMARY]


class ChromSelection:
    """Which contigs a command keeps: ``primary`` (default), ``all``, or a comma-separated list of names.

    Records on other contigs are skipped (and counted by the readers), not refused.

    Parameters
    ----------
    spec : str
        The value of ``--chroms``.
    option : str
        How the choice is named in messages.
    """

    def __init__(self, spec: str = "primary", option: str = "--chroms"):
        self.spec = spec.strip()
        self.option = option
        names = [n.strip() for n in self.spec.split(",") if n.strip()]
        if not names:
            raise ScfanError(f"{option} {spec!r}: expected primary, all or a comma-separated list of chromosomes")
        self.names: frozenset[str] | None = None if self.spec in ("primary", "all") else frozenset(names)

    @property
    def keeps_all(self) -> bool:
        return self.spec == "all"

    def __call__(self, name: str) -> bool:
        if self.names is not None:
            return name in self.names
        return self.spec == "all" or name in _PRIMARY

    @property
    def what(self) -> str:
        if self.names is not None:
            return f"{self.option} {self.spec}"
        return "the primary chromosomes (chr1-22, X, Y, M)"

    def restrict(self, sizes: Mapping[str, int], label: str) -> dict[str, int]:
        """The chromosome sizes of the kept contigs; all of them when ``primary`` finds no human-style name.

        Raises
        ------
        ChromosomeNameError
            When a list of names keeps none of the genome's contigs.
        """
        kept = {n: s for n, s in sizes.items() if self(n)}
        if not kept and self.spec == "primary":
            log.info("%s: no primary human chromosome names (chr1-22, X, Y, M); keeping all %d contigs", label,
                     len(sizes))
            return dict(sizes)
        if not kept:
            raise ChromosomeNameError(f"{label}: none of {self.option} {self.spec} is in it (it has "
                                      f"{few_names(sizes)})")
        if len(kept) < len(sizes):
            log.info("%s: %d of %d contigs kept (%s)", label, len(kept), len(sizes), self.what)
        return kept


class SkippedContigs:
    """Counts records skipped for being on contigs outside a :class:`ChromSelection`; warns once at the end."""

    def __init__(self, label: str | Path, noun: str, selection: ChromSelection):
        self.label, self.noun, self.selection = str(label), noun, selection
        self.counts: dict[str, int] = {}

    def add(self, chrom: str, n: int = 1) -> None:
        self.counts[chrom] = self.counts.get(chrom, 0) + n

    def warn(self) -> None:
        """Log one warning with the number of records and contigs skipped (nothing when none was)."""
        if not self.counts:
            return
        hint = "; --chroms all keeps them" if self.selection.spec == "primary" else ""
        log.warning("%s: %d %s on %d contig(s) outside %s skipped (%s)%s", self.label, sum(self.counts.values()),
                    self.noun, len(self.counts), self.selection.what, few_names(self.counts), hint)


def few_names(names: Iterable[str], k: int = 4) -> str:
    names = list(names)
    return ", ".join(names[:k]) + (f", … ({len(names)} in all)" if len(names) > k else "")


def _natural_key(name: str) -> list:
    """Sort key putting ``chr2`` before ``chr10``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def genome_build(sizes: Mapping[str, int]) -> str | None:
    """``GRCh38`` or ``hg19`` when the length of chr1 (or ``1``) is that build's, else None."""
    for name in ("chr1", "1"):
        if name in sizes:
            return CHR1_LENGTH_BUILDS.get(int(sizes[name]))
    return None


def _build_from_names(names: Iterable[str]) -> str | None:
    """Guess the build from contig names alone: hg19's ``_gl000…``/``_hap`` vs GRCh38's ``KI270…``/``v1_random``."""
    for n in names:
        low = n.lower()
        if "_gl0" in low or "_hap" in low:
            return "hg19"
        if "ki27" in low or n.endswith(("v1_random", "v2_random", "v1_alt", "v2_alt")):
            return "GRCh38"
    return None


def chrom_name_hint(names: Iterable[str], reference: Iterable[str], ref_label: str = "the reference") -> str:
    """The likely fix when ``names`` are not in ``reference``: a ``chr`` prefix difference or another build.

    Parameters
    ----------
    names : iterable of str
        Chromosome names of an input that the reference lacks.
    reference : iterable of str
        The reference's names (a mapping of name -> length also lets the build be named).
    ref_label : str
        How the reference is named in the hint.

    Returns
    -------
    str
        ``" — …"`` to append to a message, or ``""`` when there is no likely fix to suggest.
    """
    names = list(names)
    ref = set(reference)
    fixable = [m for m in names if _alt_name(m) in ref]
    if fixable and len(fixable) * 2 >= len(names):
        if fixable[0].startswith("chr"):
            return f" — {ref_label} has no 'chr' prefix: strip it (e.g. sed 's/^chr//')"
        return f" — {ref_label} uses 'chr' prefixes: add them (e.g. sed 's/^/chr/')"
    ref_build = genome_build(reference) if isinstance(reference, Mapping) else None
    ref_build = ref_build or _build_from_names(ref)
    other = _build_from_names(names)
    if ref_build and other and other != ref_build:
        return (f" — the names are those of {other}, {ref_label} is {ref_build}: use files of one genome build "
                "(or convert with liftOver)")
    return ""


def build_mismatch(label: str, sizes: Mapping[str, int], ref_label: str, ref_sizes: Mapping[str, int]) -> str | None:
    """A one-line message when two sets of chromosome lengths are of different builds (chr1 length), else None."""
    a, b = genome_build(sizes), genome_build(ref_sizes)
    if a is None or b is None or a == b:
        return None
    return (f"{label} is {a} (chr1 {_BUILD_LENGTHS[a]:,} bp) but {ref_label} is {b} (chr1 {_BUILD_LENGTHS[b]:,} "
            f"bp) — the genome builds differ: use files of one build (or convert with liftOver)")


def check_chrom_names(reference: tuple[str, Iterable[str]], others: Mapping[str, Iterable[str]]) -> None:
    """Fail when an input uses chromosome names absent from the reference (e.g. ``1`` vs ``chr1``), or another build.

    Parameters
    ----------
    reference : tuple of (str, iterable of str)
        ``(label, names)`` of the reference (the genome); a mapping of name -> length as names also lets a
        GRCh38/hg19 difference be found by the length of chr1.
    others : mapping of str to iterable of str
        Each input's label (a file path) -> its chromosome names (or name -> length).

    Raises
    ------
    ChromosomeNameError
        One line naming each disagreeing input, a few of its names missing from the reference, a few of the
        reference's names, and the likely fix (add/strip ``chr``; the builds differ).
    """
    ref_label, ref_names = reference
    ref = ref_names if isinstance(ref_names, Mapping) else list(ref_names)
    ref_set = set(ref)
    problems = []
    for label, names in others.items():
        if isinstance(names, Mapping) and isinstance(ref, Mapping):
            msg = build_mismatch(label, names, ref_label, ref)
            if msg is not None:
                problems.append(msg)
                continue
        names = list(names)
        missing = sorted(set(names) - ref_set, key=_natural_key)
        if not missing:
            continue
        shown = ", ".join(missing[:5]) + (f" … ({len(missing)} in all)" if len(missing) > 5 else "")
        common = " (no name in common)" if not set(names) & ref_set else ""
        problems.append(f"{label} has chromosome(s) {shown} not in {ref_label}{common}, which has {few_names(ref)}"
                        f"{chrom_name_hint(missing, ref, ref_label)}")
    if problems:
        raise ChromosomeNameError("; ".join(problems))
