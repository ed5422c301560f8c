"""Cross-input checks before any work starts: samplesheets valid, files present, chromosome names consistent."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import pysam

from scfan._io import atomic_path, write_json
from scfan.errors import InputFileError
from scfan.genome import Genome, check_chrom_names, fai_path, read_chrom_sizes
from scfan.samplesheet import read_samplesheet
from scfan.tracks import bigwig_chroms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckInputsConfig:
    genome: str
    mappability: str
    bulk_samplesheet: str
    sc_samplesheet: str | None = None
    blacklist: str | None = None


def _bed_chroms(path: Path, limit: int = 200_000) -> set[str]:
    """Chromosome names of a (gzipped) BED-like file, from its first ``limit`` records."""
    from scfan._io import open_text

    names: set[str] = set()
    with open_text(path) as fh:
        for n, line in enumerate(fh):
            if n >= limit:
                break
            if line.strip() and not line.startswith(("#", "track", "browser")):
                names.add(line.split("\t", 1)[0])
    return names


def _fragments_chroms(path: Path) -> list[str]:
    from scfan.sc.fragments import check_fragments_index

    check_fragments_index(path)  # the same index rule as the steps that read the file
    with pysam.TabixFile(str(path)) as tf:
        return list(tf.contigs)


def _write_rows(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})


def check_inputs(cfg: CheckInputsConfig, outdir: Path) -> dict:
    """Validate every input and write samplesheets with absolute paths into ``outdir``.

    Returns a summary (also written as ``outdir/inputs.json``).
    """
    genome = Path(cfg.genome)
    if not genome.is_file():
        raise InputFileError(genome, "genome FASTA not found")
    fai = fai_path(genome)
    if not fai.exists():
        log.info("%s: no .fai index; building %s", genome, fai)
        Genome(genome).close()  # pyfaidx writes the index next to the FASTA (or says how to make it)
    sizes = read_chrom_sizes(fai)
    ref = (str(genome), sizes.keys())
    others: dict[str, list[str] | set[str]] = {cfg.mappability: list(bigwig_chroms(cfg.mappability))}
    if cfg.blacklist:
        others[cfg.blacklist] = _bed_chroms(Path(cfg.blacklist))
    bulk_rows = read_samplesheet(cfg.bulk_samplesheet, "bulk")
    for r in bulk_rows:
        others.setdefault(r["peaks"], _bed_chroms(Path(r["peaks"])))
        if r["atac"].endswith((".bw", ".bigWig", ".bigwig")):
            others.setdefault(r["atac"], list(bigwig_chroms(r["atac"])))
    sc_rows: list[dict[str, str]] = []
    if cfg.sc_samplesheet:
        sc_rows = read_samplesheet(cfg.sc_samplesheet, "sc")
        for r in sc_rows:
            if "fragments" in r:
                others[r["fragments"]] = _fragments_chroms(Path(r["fragments"]))
    # bigWigs and tabix indexes may list every contig of an assembly; only names absent from the FASTA matter.
    check_chrom_names(ref, others)
    outdir.mkdir(parents=True, exist_ok=True)
    _write_rows(outdir / "bulk_samplesheet.csv", bulk_rows, ["line", "tf", "peaks", "atac", "motif"])
    if cfg.sc_samplesheet:
        _write_rows(outdir / "sc_samplesheet.csv", sc_rows,
                    ["sample", "fragments", "bam", "barcode_tag", "counts", "peaks", "barcodes", "whitelist"])
    summary = {
        "config": cfg.__dict__,
        "chromosomes": len(sizes),
        "genome_length": int(sum(sizes.values())),
        "bulk_lines": sorted({r["line"] for r in bulk_rows}),
        "bulk_rows": len(bulk_rows),
        "sc_samples": [r["sample"] for r in sc_rows],
    }
    write_json(outdir / "inputs.json", summary)
    log.info("inputs OK: %d chromosomes, %d bulk line(s), %d sc sample(s)", len(sizes),
             len(summary["bulk_lines"]), len(sc_rows))
    return summary
