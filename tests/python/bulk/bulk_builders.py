"""Builders of tiny bulk inputs written by the tests themselves: a 3-chromosome genome with a planted motif,
ATAC/mappability bigWigs, peaks."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyBigWig

from cli_runner import run_cli  # noqa: F401 (re-exported: the bulk tests import it from here)

MOTIF = "CCGCGTGGCGCCAG"  # non-palindromic, planted at every peak summit of TF "TFA"
CHROMS = {"chr1": 24_000, "chr2": 16_000, "chr3": 40_000}


@dataclass
class TinyBulk:
    root: Path
    genome: Path
    atac: Path
    mappability: Path
    blacklist: Path
    samplesheet: Path
    peaks: dict[str, Path]
    seqs: dict[str, str]
    peak_sites: dict[str, list[tuple[str, int, int]]]


def write_fasta(path: Path, seqs: dict[str, str], width: int = 60) -> None:
    with open(path, "w") as fh:
        for name, s in seqs.items():
            fh.write(f">{name}\n")
            for i in range(0, len(s), width):
                fh.write(s[i : i + width] + "\n")


def write_bigwig(path: Path, sizes: dict[str, int], values: dict[str, np.ndarray]) -> None:
    """Per-base values as bedGraph-style runs (zeros omitted)."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, _size in sizes.items():
        v = values.get(chrom)
        if v is None:
            continue
        nz = np.flatnonzero(v != 0)
        if not len(nz):
            continue
        bw.addEntries([chrom] * len(nz), nz.tolist(), ends=(nz + 1).tolist(), values=v[nz].astype(float).tolist())
    bw.close()


def write_narrowpeak(path: Path, peaks: list[tuple[str, int, int]], gz: bool = True) -> None:
    lines = "".join(f"{c}\t{s}\t{e}\tp{i}\t500\t.\t10.0\t5.0\t3.0\t{(e - s) // 2}\n"
                    for i, (c, s, e) in enumerate(peaks))
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(lines)
    else:
        path.write_text(lines)


def make_tiny_bulk(root: Path, seed: int = 1, n_peaks_per_10kb: int = 6) -> TinyBulk:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    seqs, atac, mapp, sites = {}, {}, {}, {"TFA": [], "TFB": []}
    for chrom, size in CHROMS.items():
        arr = np.array(list("ACGT"))[rng.integers(0, 4, size)]
        acc = rng.poisson(0.05, size).astype(np.float32)
        n = max(2, n_peaks_per_10kb * size // 10_000)
        centers = np.sort(rng.choice(np.arange(1500, size - 1500, 400), size=n, replace=False))
        for k, c in enumerate(centers):
            tf = "TFA" if k % 2 == 0 else "TFB"
            if tf == "TFA":
                arr[c - 7 : c + 7] = list(MOTIF)
            acc[c - 150 : c + 150] += rng.poisson(3.0, 300)
            sites[tf].append((chrom, int(c - 150), int(c + 150)))
        seqs[chrom] = "".join(arr)
        atac[chrom] = acc
        m = np.ones(size, dtype=np.float32)
        m[100:300] = 0.5
        mapp[chrom] = m
    genome = root / "genome.fa"
    write_fasta(genome, seqs)
    write_bigwig(root / "atac.bw", CHROMS, atac)
    write_bigwig(root / "map.bw", CHROMS, mapp)
    (root / "blacklist.bed").write_text("chr3\t20000\t20500\n")
    peaks = {}
    for tf, ps in sites.items():
        peaks[tf] = root / f"{tf}.narrowPeak.gz"
        write_narrowpeak(peaks[tf], ps)
    sheet = root / "bulk.csv"
    sheet.write_text("line,tf,peaks,atac,motif\n" + "".join(f"L1,{tf},{p.name},atac.bw,\n" for tf, p in peaks.items()))
    return TinyBulk(root, genome, root / "atac.bw", root / "map.bw", root / "blacklist.bed", sheet, peaks, seqs,
                    sites)
