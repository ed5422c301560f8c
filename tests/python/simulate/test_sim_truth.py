"""The truth is recoverable by simple statistics: motifs in ChIP peaks, ATAC at bound sites, drivers, cell types."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyBigWig
import pytest
from Bio.Seq import Seq
from pyjaspar import jaspardb
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.preprocessing import normalize

from scfan.genome import Genome
from scfan.intervals import read_bed


def _pssm(release: str, jaspar_id: str):
    m = jaspardb(release=release).fetch_motif_by_id(jaspar_id)
    return m.counts.normalize(pseudocounts=0.8).log_odds()


def _best(pssm, rc_pssm, seq: str) -> float:
    s = Seq(seq)
    return float(max(np.nanmax(pssm.calculate(s)), np.nanmax(rc_pssm.calculate(s))))


def test_planted_motifs_enriched_in_chip_peaks(sim_view):
    """JASPAR PWM (Biopython's scorer, not the simulator's) hits: ChIP summits vs random genomic windows."""
    man = sim_view.manifest
    rng = np.random.default_rng(0)
    release = man["config"]["jaspar_release"]
    with Genome(sim_view.root / "genome.fa") as g:
        bg_seqs = []
        while len(bg_seqs) < 1000:
            chrom = str(rng.choice(g.chroms))
            start = int(rng.integers(0, g.sizes[chrom] - 101))
            seq = g.fetch(chrom, start, start + 101)
            if "N" not in seq:
                bg_seqs.append(seq)
        line = "lineA"
        for tf in man["lines"][line]:
            tf_row = next(t for t in man["tfs"] if t["tf"] == tf)
            pssm = _pssm(release, tf_row["jaspar_id"])
            rc = pssm.reverse_complement()
            threshold = pssm.distribution(precision=10**3).threshold_fpr(1e-4)
            peaks = read_bed(sim_view.root / "bulk" / line / f"{tf}.narrowPeak.gz", narrowpeak=True)
            summits = (peaks["start"] + peaks["peak"]).to_numpy()
            peak_seqs = [g.fetch(c, int(s) - 50, int(s) + 51) for c, s in zip(peaks["chrom"], summits, strict=True)]
            in_peaks = np.mean([_best(pssm, rc, s) >= threshold for s in peak_seqs])
            in_bg = np.mean([_best(pssm, rc, s) >= threshold for s in bg_seqs])
            print(f"{line} {tf}: PWM hits in {in_peaks:.2f} of ChIP summits vs {in_bg:.3f} of random windows")
            assert in_peaks > 0.5 and in_peaks > 5 * max(in_bg, 0.01)


@pytest.mark.parametrize("line", ["lineA", "lineB"])
def test_bulk_atac_separates_bound_sites_from_decoys(sim_view, line):
    """Accessibility is informative (bound sites open, decoys closed) while the motif alone is not."""
    sites = sim_view.sites.filter(pl.col("tf").is_in(sim_view.manifest["lines"][line])
                                  & (pl.col("decoy") | pl.col("bound_lines").list.contains(line)))
    bound = sites["bound_lines"].list.contains(line).to_numpy()
    bw = pyBigWig.open(str(sim_view.root / "bulk" / line / "atac.bw"))
    try:
        mid = ((sites["start"] + sites["end"]) // 2).to_numpy()
        atac = np.array([bw.stats(c, int(m) - 100, int(m) + 100, type="sum")[0]
                         for c, m in zip(sites["chrom"], mid, strict=True)])
    finally:
        bw.close()
    auc_atac = roc_auc_score(bound, atac)
    auc_motif = roc_auc_score(bound, sites["motif_score"].to_numpy())
    print(f"{line}: AUROC bound vs decoy, ATAC {auc_atac:.3f}, motif score {auc_motif:.3f}")
    assert auc_atac > 0.9 and auc_motif < 0.7


def test_weak_motif_sites_have_lower_scores(sim_view):
    s = sim_view.sites.filter(~pl.col("decoy"))
    weak = s.filter(pl.col("weak_motif"))["motif_score"].median()
    strong = s.filter(~pl.col("weak_motif"))["motif_score"].median()
    assert weak < strong - 3


@pytest.fixture(scope="module")
def good_cells(sim_view) -> pl.DataFrame:
    return sim_view.cells.filter(pl.col("quality") == "good")


def test_pseudobulk_accessibility_is_highest_at_driver_sites(sim_view, sim_fragments, good_cells, counts_by_region):
    """Per cell type, insertions per fragment within ±150 bp of each TF's planted (non-decoy) sites."""
    types = sorted(good_cells["cell_type"].unique())
    type_of = dict(zip(good_cells["cell_id"], good_cells["cell_type"], strict=True))
    sites = sim_view.sites.filter(~pl.col("decoy"))
    # one region per RE (sites of one RE are close); keep the TF of each site for grouping
    regions = (sites.with_columns(((pl.col("start") + pl.col("end")) // 2).alias("mid"))
               .group_by("re_id").agg(pl.col("chrom").first(), pl.col("mid").mean().cast(pl.Int64), pl.col("tf"))
               .with_columns((pl.col("mid") - 150).alias("start"), (pl.col("mid") + 150).alias("end"))
               .sort("chrom", "start"))
    type_index = {t: i for i, t in enumerate(types)}
    cell_index = {c: type_index[t] for c, t in type_of.items()}
    per_type = counts_by_region(sim_fragments, regions.select("chrom", "start", "end"), cell_index, len(types))
    depth = np.bincount([cell_index[c] for c in sim_fragments["cell_id"] if c in cell_index], minlength=len(types))
    acc = per_type.toarray() / depth[:, None]
    drivers = sim_view.drivers
    tf_lists = regions["tf"].to_list()
    for tf in sorted(drivers["tf"].unique()):
        cols = [j for j, tfs in enumerate(tf_lists) if tf in tfs]
        score = acc[:, cols].mean(axis=1)
        driven = set(drivers.filter(pl.col("tf") == tf)["cell_type"])
        inside = [score[type_index[t]] for t in types if t in driven]
        outside = [score[type_index[t]] for t in types if t not in driven]
        print(f"{tf}: accessibility in driver types {np.round(inside, 4)}, others {np.round(outside, 4)}")
        assert min(inside) > 1.3 * max(outside)


def test_cell_types_separable_by_tfidf_svd(sim_view, sim_fragments, good_cells, counts_by_region):
    cell_index = {c: i for i, c in enumerate(good_cells["cell_id"])}
    x = counts_by_region(sim_fragments, sim_view.peaks.select("chrom", "start", "end"), cell_index, len(cell_index))
    x.data[:] = 1.0  # binarise
    tf = normalize(x, norm="l1")
    idf = np.log1p(x.shape[0] / (1 + np.asarray(x.sum(axis=0)).ravel()))
    lsi = TruncatedSVD(n_components=20, random_state=0).fit_transform(tf.multiply(idf[None, :]).tocsr())
    emb = normalize(lsi[:, 1:])  # the first component tracks depth
    labels = KMeans(n_clusters=good_cells["cell_type"].n_unique(), n_init=10, random_state=0).fit_predict(emb)
    ari = adjusted_rand_score(good_cells["cell_type"].to_list(), labels)
    print(f"TF-IDF/SVD + k-means on {x.shape[0]} cells x {x.shape[1]} peaks: ARI = {ari:.3f}")
    assert ari > 0.6


def test_bound_window_labels_mark_windows_holding_a_bound_site_centre():
    import numpy as np
    import polars as pl

    from scfan.simulate.truth import bound_window_labels

    sites = pl.DataFrame({"chrom": ["chr1", "chr1", "chr2", "chr1"], "start": [100, 500, 100, 900],
                          "end": [110, 510, 110, 910], "tf": ["A", "A", "A", "B"],
                          "decoy": [False, True, False, False],
                          "bound_types": [["t1"], ["t1"], ["t2"], ["t1"]], "bound_lines": [[], [], [], []]},
                         schema_overrides={"bound_lines": pl.List(pl.Utf8)})
    chroms = np.array(["chr1", "chr1", "chr1", "chr2", "chr1"])
    starts = np.array([0, 105, 450, 50, 850])
    # chr1:0-200 holds A's centre 105; 105-305 holds it too (start inclusive); the decoy at 505 never counts;
    # chr2's site is bound in t2 only; B's site is another TF
    assert bound_window_labels(sites, chroms, starts, 200, "A", "t1").tolist() == [True, True, False, False, False]
    assert bound_window_labels(sites, chroms, starts, 200, "A", "t2").tolist() == [False, False, False, True, False]
    assert bound_window_labels(sites, chroms, starts, 200, "B", "t1").tolist() == [False, False, False, False, True]
