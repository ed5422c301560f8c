"""chromVAR baseline (`scfan sc chromvar`) on a small simulated data set with planted JASPAR motifs."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sc_builders import run_cli

from scfan.errors import InputFileError, ScfanError
from scfan.sc import chromvar as C


def _ensure_registered() -> None:
    """Add `sc chromvar` to the `sc` group if cli/sc.py does not already (idempotent)."""
    from scfan.cli.sc import sc_app
    from scfan.cli.sc_chromvar import register

    if not any(c.name == "chromvar" for c in sc_app.registered_commands):
        register(sc_app)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """150 barcodes of 3 cell types on a 1 Mb genome with 5 planted TFs; one sample ingested into cells.h5ad."""
    from scfan.simulate import run_simulation

    root = tmp_path_factory.mktemp("chromvar")
    d = run_simulation("test", 3, root / "sim", n_cells=150, genome_size=1_000_000, n_tfs=5, n_types=3, n_lines=1,
                       n_samples=1, median_fragments=3000)
    _ensure_registered()
    mp = pytest.MonkeyPatch()
    try:
        assert run_cli(mp, "sc", "ingest", "--samplesheet", str(d / "sc_samplesheet.csv"), "--sample", "sample1",
                       "--peaks", str(d / "sc" / "peaks.bed"), "--min-fragments", "100",
                       "--out", str(root / "cells.h5ad")) == 0
    finally:
        mp.undo()
    tfs = pd.read_csv(d / "tfs.tsv", sep="\t")
    # the planted matrices themselves (the catalogue's GATA1 is not the one a name lookup finds)
    motifs = [f"{t}={j}" for t, j in zip(tfs["tf"], tfs["jaspar_id"], strict=True)]
    cells = root / "cells.h5ad"
    out = C.run_chromvar(cells, d / "genome.fa", motifs, C.ChromvarConfig(motifs=tuple(motifs)))
    return {"root": root, "sim": d, "cells": cells, "fasta": d / "genome.fa", "motifs": motifs, "out": out}


def _chromvar(monkeypatch, sim, cells: Path, out: Path, *extra: str, fasta: Path | None = None) -> int:
    _ensure_registered()
    args = ["sc", "chromvar", "--cells", str(cells), "--genome", str(fasta or sim["fasta"]), "--out", str(out)]
    for m in sim["motifs"]:
        args += ["--motif", m]
    return run_cli(monkeypatch, *args, *extra)


def test_output_layout(sim):
    out, cells = sim["out"], ad.read_h5ad(sim["cells"])
    assert out.shape == (cells.n_obs, 5)
    assert list(out.var["tf"]) == ["CTCF", "GATA1", "SPI1", "CEBPB", "FOXA1"] == list(out.var_names)
    assert list(out.var["jaspar_id"]) == ["MA0139.2", "MA2388.1", "MA0080.7", "MA0466.4", "MA0148.5"]
    assert (out.var["n_peaks_matched"] > 0).all()
    pd.testing.assert_frame_equal(out.obs, cells.obs)
    assert out.X.dtype == np.float32 and out.layers["deviations"].shape == out.shape
    assert np.isfinite(out.X).all() and np.abs(out.X).max() > 1  # z-scores, not all zero
    info = out.uns["scfan_chromvar"]
    assert info["n_peaks"] == cells.n_vars and info["config"]["n_jobs"] == 1 and info["config"]["seed"] == 0
    assert info["versions"]["pychromvar"] == "0.0.4" and info["jaspar_release"].startswith("JASPAR")


def test_planted_drivers_have_the_highest_deviation(sim):
    """Cells of a type whose program uses TF X deviate more for X than cells of the types that do not."""
    d, out = sim["sim"], sim["out"]
    truth = pd.read_csv(d / "truth" / "cells.tsv", sep="\t").set_index("cell_id").loc[out.obs_names]
    good = (truth["quality"] == "good").to_numpy()
    cell_type = truth["cell_type"].to_numpy()
    drivers = pd.read_csv(d / "truth" / "drivers.tsv", sep="\t")
    assert len(drivers) >= 3
    for tf, rows in drivers.groupby("tf"):
        z = out[:, tf].X.ravel()
        driven = np.isin(cell_type, rows["cell_type"]) & good
        other = ~np.isin(cell_type, rows["cell_type"]) & good
        assert z[driven].mean() > z[other].mean() + 1.0, (tf, z[driven].mean(), z[other].mean())


def test_same_seed_same_bytes_and_n_jobs_does_not_matter(sim, tmp_path, monkeypatch):
    assert _chromvar(monkeypatch, sim, sim["cells"], tmp_path / "a.h5ad") == 0
    assert _chromvar(monkeypatch, sim, sim["cells"], tmp_path / "b.h5ad", "--n-jobs", "2") == 0
    a, b = ad.read_h5ad(tmp_path / "a.h5ad"), ad.read_h5ad(tmp_path / "b.h5ad")
    assert a.X.tobytes() == b.X.tobytes() == sim["out"].X.tobytes()
    assert a.layers["deviations"].tobytes() == b.layers["deviations"].tobytes()
    assert not list(tmp_path.glob(".*tmp*"))


def test_zero_count_peaks_are_dropped_and_change_nothing(sim, tmp_path):
    cells = ad.read_h5ad(sim["cells"])
    extra = pd.DataFrame({"chrom": ["chr1", "chr2"], "start": [5_000, 5_000], "end": [5_400, 5_400]},
                         index=["chr1:5000-5400", "chr2:5000-5400"])
    padded = ad.AnnData(X=sp.hstack([cells.X, sp.csr_matrix((cells.n_obs, 2), dtype=cells.X.dtype)]).tocsr(),
                        obs=cells.obs, var=pd.concat([cells.var, extra]))
    padded.write_h5ad(tmp_path / "padded.h5ad")
    out = C.run_chromvar(tmp_path / "padded.h5ad", sim["fasta"], sim["motifs"])
    assert out.uns["scfan_chromvar"]["n_peaks_zero_dropped"] == 2
    assert out.X.tobytes() == sim["out"].X.tobytes()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # pychromvar 0.0.4 calls deprecated AnnData methods
def test_deviations_equal_pychromvar(sim):
    """Our sparse deviations are pychromvar.compute_deviations' z-scores, on the same background peaks."""
    import pychromvar

    a = C.read_counts(sim["cells"])
    work = ad.AnnData(X=sp.csr_matrix(a.X), var=pd.DataFrame(index=a.var_names))
    work.uns["peak_seq"] = C.peak_sequences(C.peak_coordinates(a, sim["cells"]), sim["fasta"], sim["cells"])
    with C._quiet_tqdm("pychromvar.preprocessing", "pychromvar.match_motif"):
        pychromvar.add_gc_bias(work)
        pychromvar.match_motif(work, motifs=[m.matrix for m in C.resolve_motifs(sim["motifs"])])
    work.varm["bg_peaks"] = C.background_peaks(work, C.ChromvarConfig())
    deviation, z = C.compute_deviations(work.X, sp.csr_matrix(work.varm["motif_match"]), work.varm["bg_peaks"])
    ref = pychromvar.compute_deviations(work.copy(), n_jobs=1)
    np.testing.assert_allclose(z, ref.X, atol=1e-4)
    assert not np.allclose(deviation, z)


def test_motif_items_resolve_by_id_name_and_alias():
    got = C.resolve_motifs(["spi1", "MA0139.2", "G1=MA0035.5", "SPI1", "Spi1=MA0080.7"])
    assert [(m.tf, m.jaspar_id) for m in got] == [("spi1", "MA0080.7"), ("CTCF", "MA0139.2"), ("G1", "MA0035.5")]
    assert C.resolve_motifs(["CTCF"])[0].jaspar_id == "MA0139.2"  # lowest base id of MA0139/MA1929/MA1930


@pytest.mark.parametrize(("items", "message"), [
    (["NOT_A_TF_XYZ"], "no TF named 'NOT_A_TF_XYZ'"),
    (["MA9999.9"], "has no matrix MA9999.9"),
    (["SPI1", "SPI1=MA0139.2"], "TF 'SPI1' is already MA0080.7"),
    (["X=notanid"], "expected NAME=MATRIX_ID"),
    ([], "no motifs"),
])
def test_bad_motif_items_are_one_line_errors(items, message):
    with pytest.raises(ScfanError, match=message) as err:
        C.resolve_motifs(items)
    assert "\n" not in str(err.value)


def test_tfs_from_activity(tmp_path):
    var = pd.DataFrame({"model": ["A", "A", "B"], "tf": ["CTCF", "GATA1", "CTCF"]},
                       index=["A:CTCF", "A:GATA1", "B:CTCF"]).astype("category")
    ad.AnnData(X=np.zeros((2, 3), np.float32), var=var).write_h5ad(tmp_path / "act.h5ad")
    assert C.tfs_from_activity(tmp_path / "act.h5ad") == ["CTCF", "GATA1"]
    ad.AnnData(X=np.zeros((2, 1), np.float32)).write_h5ad(tmp_path / "plain.h5ad")
    with pytest.raises(InputFileError, match=r"plain\.h5ad: no var\['tf'\]"):
        C.tfs_from_activity(tmp_path / "plain.h5ad")


def test_motifs_from_activity_on_the_cli(sim, tmp_path, monkeypatch):
    var = pd.DataFrame({"tf": ["SPI1", "FOXA1"]}, index=["m:SPI1", "m:FOXA1"])
    ad.AnnData(X=np.zeros((1, 2), np.float32), var=var).write_h5ad(tmp_path / "act.h5ad")
    _ensure_registered()
    assert run_cli(monkeypatch, "sc", "chromvar", "--cells", str(sim["cells"]), "--genome", str(sim["fasta"]),
                   "--motif", "MA0139.2", "--motifs-from-activity", str(tmp_path / "act.h5ad"),
                   "--out", str(tmp_path / "cv.h5ad")) == 0
    out = ad.read_h5ad(tmp_path / "cv.h5ad")
    assert list(out.var_names) == ["CTCF", "SPI1", "FOXA1"]
    assert list(out.var["jaspar_id"]) == ["MA0139.2", "MA0080.7", "MA0148.5"]


def _bad_cells(kind: str, cells: ad.AnnData, path: Path) -> tuple[Path, str]:
    """A broken copy of the cells file and the text the error must contain (file name and record)."""
    a = cells.copy()
    if kind == "no_coordinates":
        a.var = pd.DataFrame(index=[f"peak{i}" for i in range(a.n_vars)])
        expect = "record 'peak0'"
    elif kind == "unknown_chromosome":
        name = a.var_names[3]
        a.var["chrom"] = a.var["chrom"].astype(str)
        a.var.loc[name, "chrom"] = "chrZ"
        a.var_names = [("chrZ:" + n.split(":")[1]) if i == 3 else n for i, n in enumerate(a.var_names)]
        expect = f"record 'chrZ:{name.split(':')[1]}': peak on chromosome 'chrZ'"
    elif kind == "non_integer":
        X = sp.csr_matrix(a.X, dtype=np.float32)
        X.data[5] = 0.5
        a.X = X
        expect = "is not a non-negative integer"
    elif kind == "one_cell":
        a = a[:1].copy()
        expect = "1 cell(s); chromVAR needs at least 2"
    else:  # all_zero
        a.X = sp.csr_matrix(a.shape, dtype=np.int32)
        expect = "counts are zero"
    out = path / f"{kind}.h5ad"
    a.write_h5ad(out)
    return out, expect


@pytest.mark.parametrize("kind", ["no_coordinates", "unknown_chromosome", "non_integer", "one_cell", "all_zero"])
def test_bad_cells_exit_2_with_one_line_and_no_output(sim, tmp_path, monkeypatch, capsys, kind):
    bad, expect = _bad_cells(kind, ad.read_h5ad(sim["cells"]), tmp_path)
    capsys.readouterr()
    assert _chromvar(monkeypatch, sim, bad, tmp_path / "cv.h5ad") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"scfan: error: {bad}") and expect in err, err
    assert not (tmp_path / "cv.h5ad").exists() and not list(tmp_path.glob(".cv*"))


def test_no_motif_match_is_an_error(sim, tmp_path, monkeypatch, capsys):
    """A genome of poly-A: no planted motif matches any peak."""
    sizes = dict(line.split("\t")[:2] for line in (sim["sim"] / "chrom.sizes").read_text().splitlines())
    fasta = tmp_path / "polyA.fa"
    fasta.write_text("".join(f">{c}\n" + "A" * int(n) + "\n" for c, n in sizes.items()))
    capsys.readouterr()
    assert _chromvar(monkeypatch, sim, sim["cells"], tmp_path / "cv.h5ad", fasta=fasta) == 2
    err = capsys.readouterr().err
    assert "no motif (CTCF, GATA1, SPI1, CEBPB, FOXA1) matches any of the" in err and str(sim["cells"]) in err
    assert not (tmp_path / "cv.h5ad").exists()


def test_config_refuses_all_cores():
    with pytest.raises(ScfanError, match="--n-jobs -1"):
        C.ChromvarConfig(n_jobs=-1)


@pytest.mark.slow  # pynndescent's numba compilation takes ~50 s per process
def test_pynndescent_background_is_seeded(sim):
    """pychromvar's own background search draws from numpy's global RNG: seeded, repeatable, state given back."""
    cfg = C.ChromvarConfig(motifs=tuple(sim["motifs"]), background="pynndescent")
    np.random.seed(123)  # noqa: NPY002 (the caller's global state must survive the run)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a = C.run_chromvar(sim["cells"], sim["fasta"], cfg=cfg)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    b = C.run_chromvar(sim["cells"], sim["fasta"], cfg=cfg)
    assert a.X.tobytes() == b.X.tobytes()
    # an approximate search of the same neighbours: close to the exact baseline
    assert np.corrcoef(a.X.ravel(), sim["out"].X.ravel())[0, 1] > 0.95
