"""``scfan sc interpret``: why a cluster's TF is called — attributions on the cluster's pooled input.

A cluster's input at a window is what per-cell inference feeds its cells, averaged over them: the DNA, the
mappability, and the mean of the cells' pooled (neighbourhood) accessibility, normalised as in ``sc predict``
(:class:`~scfan.sc.pooling.PooledTracks` with one pooling row per cluster: the mean of its cells' rows).

For each cluster and each of its top differential TFs (``--differential``) or the TFs asked for (``--features``):
the cluster's highest-probability windows among the peaks it is most accessible at; DeepLIFT/SHAP attributions of
the whole model there (tangermeme); the share of the call resting on accessibility; the motif instances in the
attributions (tangermeme's recursive seqlet caller, each seqlet matched to JASPAR with TOMTOM). With ``--region``:
per cluster, each TF's probability along the region and the bases that drive it at its best window.

Outputs (``outdir``): ``clusters.tsv`` (cluster × feature), ``instances.tsv`` (one row per motif instance),
``tracks/<cluster>_<model>_<TF>.png``; with ``--region``: ``region.tsv`` (cluster × window × feature probabilities),
``region/<cluster>_<model>_<TF>.png``; ``attributions.npz``; ``interpret.json``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from scfan._io import atomic_path, write_json
from scfan.errors import InputFileError, ScfanError
from scfan.interpret.attribution import (
    AttributionConfig,
    AttributionNet,
    accessibility_share,
    deep_lift_shap,
    sequence_accessibility_split,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellInterpretConfig:
    top_tfs: int = 2
    n_windows: int = 30
    max_candidates: int = 2000
    part: str = "model"
    clusters: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    region: str | None = None
    region_step: int = 50
    seed: int = 0
    attribution: AttributionConfig = AttributionConfig()


def parse_region(text: str, sizes: dict[str, int], context: int, genome: str) -> tuple[str, int, int]:
    """``chrom:start-end`` (0-based, half-open; commas allowed) inside the genome, room for the model input."""
    chrom, _, span = text.replace(",", "").rpartition(":")
    try:
        start, end = (int(v) for v in span.split("-"))
    except ValueError:
        raise ScfanError(f"--region {text!r}: expected chrom:start-end") from None
    if chrom not in sizes:
        raise ScfanError(f"--region {text!r}: chromosome {chrom!r} is not in the genome FASTA {genome} "
                         f"(it has {', '.join(list(sizes)[:5])}{', ...' if len(sizes) > 5 else ''})")
    if not 0 <= start < end <= sizes[chrom]:
        raise ScfanError(f"--region {text!r}: outside {chrom} (0-{sizes[chrom]}) or empty")
    if sizes[chrom] < context:
        raise ScfanError(f"--region {text!r}: {chrom} is shorter than the {context} bp model input")
    return chrom, start, end


def cluster_pooling(pooling: sp.spmatrix, cluster_of_cell: np.ndarray, n_clusters: int) -> sp.csr_matrix:
    """One pooling row per cluster: the mean of its cells' pooling rows (each row still sums to 1)."""
    n = len(cluster_of_cell)
    sizes = np.bincount(cluster_of_cell, minlength=n_clusters).astype(np.float64)
    avg = sp.csr_matrix((1.0 / sizes[cluster_of_cell], (cluster_of_cell, np.arange(n))), shape=(n_clusters, n))
    return sp.csr_matrix(avg @ sp.csr_matrix(pooling, dtype=np.float64))


def pick_features(features: list[str], clusters: list[str], cfg: CellInterpretConfig,
                  differential: Path | None) -> dict[str, list[str]]:
    """The features to explain per cluster: ``cfg.features`` for every cluster, else each cluster's ``top_tfs`` most
    differential (higher in the cluster, BH-adjusted p < 0.05) from ``differential_tfs.tsv``, else every feature."""
    unknown = [f for f in cfg.features if f not in features]
    if unknown:
        raise ScfanError(f"--features: {unknown[0]!r} is not a feature of the models (have {', '.join(features)})")
    if cfg.features:
        return {c: list(cfg.features) for c in clusters}
    if differential is None:
        return {c: list(features) for c in clusters}
    if not differential.is_file():
        raise InputFileError(differential, "differential table not found")
    tab = pl.read_csv(differential, separator="\t", schema_overrides={"cluster": pl.Utf8})
    need = {"cluster", "feature", "padj", "delta"}
    if not need <= set(tab.columns):
        raise InputFileError(differential, f"expected columns {', '.join(sorted(need))} (`sc cluster`'s "
                             "differential_tfs.tsv)")
    out = {}
    for c in clusters:
        rows = (tab.filter((pl.col("cluster") == c) & (pl.col("padj") < 0.05) & (pl.col("delta") > 0)
                           & pl.col("feature").is_in(features)).sort("padj", "delta", descending=[False, True]))
        out[c] = rows["feature"].head(cfg.top_tfs).to_list()
        if not out[c]:
            log.warning("cluster %s: no TF significantly higher than in the other clusters; nothing to explain", c)
    return out


class ClusterInputs:
    """Model inputs of windows for a cluster: DNA one-hot, mean pooled accessibility of its cells, mappability."""

    def __init__(self, tracks, genome, mappability_bw, context: int):
        self.tracks, self.genome, self.bw, self.context = tracks, genome, mappability_bw, context

    def batch(self, cluster: int, chroms: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        """``(N, 6, context)`` inputs for context starts ``starts`` on ``chroms`` (in any order)."""
        from scfan.bulk.inputs import codes_to_onehot, encode_codes
        from scfan.inference import encode_inputs

        n, L = len(starts), self.context
        onehot = np.zeros((n, 4, L), np.float32)
        acc = np.zeros((n, L), np.float32)
        mapp = np.zeros((n, L), np.float32)
        for chrom in dict.fromkeys(chroms.tolist()):
            q = np.flatnonzero(chroms == chrom)
            acc[q] = self.tracks.normalized_windows(np.full(len(q), cluster), chrom, starts[q] + L // 2, L)
            for i in q:
                s = int(starts[i])
                onehot[i] = codes_to_onehot(encode_codes(self.genome.fetch(chrom, s, s + L))[None])[0]
                vals = np.asarray(self.bw.values(chrom, s, s + L, numpy=True), dtype=np.float32)
                mapp[i] = np.nan_to_num(vals, nan=0.0)
        return encode_inputs(onehot, acc, mapp)


def _library_motifs():
    from scfan.interpret.motifs import jaspar_library

    lib = jaspar_library()
    return lib, {f"{e.matrix_id} {e.name}": e.ppm for e in lib}


def motif_instances(onehot: np.ndarray, contrib: np.ndarray, lib, motifs: dict) -> pl.DataFrame:
    """Seqlets of the contributions ``(N, L)`` (tangermeme's recursive seqlet caller), each with its best JASPAR
    match (tangermeme's TOMTOM annotation). Columns: example, start, end, attribution, jaspar_id, jaspar_name, p."""
    from tangermeme.annotate import annotate_seqlets
    from tangermeme.seqlet import recursive_seqlets

    empty = pl.DataFrame(schema={"example": pl.Int64, "start": pl.Int64, "end": pl.Int64, "attribution": pl.Float64,
                                 "jaspar_id": pl.Utf8, "jaspar_name": pl.Utf8, "p_value": pl.Float64})
    try:
        seqlets = recursive_seqlets(torch.from_numpy(np.ascontiguousarray(contrib, dtype=np.float32)))
    except (ValueError, IndexError) as exc:
        log.info("no seqlets (%s)", exc)
        return empty
    if seqlets is None or not len(seqlets):
        return empty
    idx, p = annotate_seqlets(torch.from_numpy(np.ascontiguousarray(onehot, dtype=np.float32)), seqlets, motifs,
                              n_jobs=1)
    names = list(motifs)
    rows = {"example": seqlets.iloc[:, 0].astype(int).to_numpy(), "start": seqlets.iloc[:, 1].astype(int).to_numpy(),
            "end": seqlets.iloc[:, 2].astype(int).to_numpy(),
            "attribution": seqlets["attribution"].to_numpy(dtype=float) if "attribution" in seqlets else
            np.full(len(seqlets), np.nan)}
    ids = idx[:, 0].numpy()
    rows["jaspar_id"] = [names[i].split(" ", 1)[0] if i >= 0 else "" for i in ids]
    rows["jaspar_name"] = [names[i].split(" ", 1)[1] if i >= 0 else "" for i in ids]
    rows["p_value"] = p[:, 0].numpy().astype(float)
    return pl.DataFrame(rows, schema=empty.schema)


@dataclass
class _Explained:
    """What the per-cluster explanations collect for the outputs: table rows, arrays, and the tracks to draw."""

    cluster_rows: list = field(default_factory=list)
    inst_rows: list = field(default_factory=list)
    region_rows: list = field(default_factory=list)
    arrays: dict = field(default_factory=dict)
    track_jobs: list = field(default_factory=list)


def _load_models(model_args: list[str]) -> tuple[dict, int, int, list[str]]:
    """The ``NAME=path`` models (with tracks, of one window/context size): (models, context, window, features)."""
    from scfan.bulk.model import load_model
    from scfan.sc.predict import model_name

    models = {}
    for arg in model_args:
        name, path = model_name(arg)
        net, spec = load_model(path)
        if not spec.uses_tracks:
            raise InputFileError(path, "a sequence-only model: single-cell interpretation needs a model trained with "
                                 "--atac and --mappability")
        models[name] = (net, spec)
    specs = [s for _, s in models.values()]
    context, window = specs[0].context, specs[0].window
    if any((s.context, s.window) != (context, window) for s in specs):
        raise ScfanError("--model: the models' window/context sizes differ; explain them one at a time")
    features = [f"{n}:{tf}" for n, (_, s) in models.items() for tf in s.tf_names]
    return models, context, window, features


def _candidate_windows(k: int, region, sizes: dict, window: int, flank: int, windows: pl.DataFrame,
                       peak_acc: np.ndarray | None, cfg: CellInterpretConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``k``'s windows to score: along ``region`` in steps, or at the peaks it is most accessible at."""
    if region is not None:
        chrom, rs, re_ = region
        ws = np.arange(max(rs, flank), max(rs, min(re_, sizes[chrom] - flank) - window) + 1, cfg.region_step)
        if not len(ws):
            mid = (rs + re_) // 2 - window // 2
            ws = np.array([min(max(mid, flank), sizes[chrom] - window - flank)])
        return np.array([chrom] * len(ws), dtype=object), ws
    order = np.argsort(-peak_acc[k][windows["peak"].to_numpy()], kind="stable")
    sel = np.sort(order[: cfg.max_candidates])
    return windows["chrom"].to_numpy()[sel].astype(object), windows["start"].to_numpy()[sel]


def _explain_feature(cname: str, feat: str, models: dict, x: torch.Tensor, ch: np.ndarray, ws: np.ndarray,
                     in_region: bool, window: int, flank: int, cfg: CellInterpretConfig, lib, motifs,
                     by_base: dict, out: _Explained) -> None:
    """Score one feature on a cluster's windows, attribute its top ones, find the motif instances; add to ``out``."""
    from scfan.bulk.pwm import motif_for_tf
    from scfan.inference import predict_batches
    from scfan.interpret.motifs import Match, relation

    mname, tf = feat.split(":", 1)
    net, spec = models[mname]
    ti = spec.tf_names.index(tf)
    prob = predict_batches(net, x, 256)[:, ti]
    if in_region:
        out.region_rows.extend({"cluster": cname, "chrom": c, "start": int(s), "end": int(s) + window,
                                "feature": feat, "probability": float(p)}
                               for c, s, p in zip(ch, ws, prob, strict=True))
        top = np.array([int(np.argmax(prob))])
    else:
        top = np.argsort(-prob, kind="stable")[: cfg.n_windows]
    xt = x[torch.from_numpy(top)]
    dna, tr = xt[:, :4].contiguous(), xt[:, 4:].contiguous()
    anet = AttributionNet(net, cfg.part)
    hyp, _rel = deep_lift_shap(anet, dna, tr, ti, cfg.attribution)
    ps, pa = sequence_accessibility_split(anet, dna, tr, ti, spec.track_norm, cfg.attribution.n_shuffles, cfg.seed,
                                          cfg.attribution.device)
    contrib = (hyp * dna.numpy()).sum(axis=1)
    inst = motif_instances(dna.numpy(), contrib, lib, motifs)
    own_id = motif_for_tf(tf, spec.motifs.get(tf))
    own = by_base.get(str(own_id).split(".")[0]) if own_id else None
    rel = [relation(Match(i, n, p, p), own, tf) for i, n, p in
           zip(inst["jaspar_id"], inst["jaspar_name"], inst["p_value"], strict=True)]
    inst = inst.with_columns(pl.Series("relation", rel, dtype=pl.Utf8))
    sig = inst.filter(pl.col("p_value") < 0.01)
    top_names = Counter(sig["jaspar_name"].to_list()).most_common(3)
    label = [f"{c}:{s}-{s + window}" for c, s in zip(ch[top], ws[top], strict=True)]
    out.inst_rows.extend({**r, "cluster": cname, "feature": feat, "window": label[r["example"]]}
                         for r in inst.to_dicts())
    row = {"cluster": cname, "feature": feat, "model": mname, "tf": tf, "n_windows": len(top),
           "mean_probability": float(prob[top].mean()), "accessibility_share": accessibility_share(ps, pa),
           "n_instances": sig.height, "n_own_motif_instances": int(sig.filter(pl.col("relation") != "other").height),
           "top_instance_motifs": "; ".join(f"{n} ×{c}" for n, c in top_names)}
    out.cluster_rows.append(row)
    key = f"{cname}/{feat}"
    out.arrays[f"{key}/window"] = np.array(label)
    out.arrays[f"{key}/hypothetical"] = hyp.astype(np.float16)
    out.arrays[f"{key}/onehot"] = dna.numpy().astype(np.uint8)
    # the scored window only, not the whole model input: what the call is about, and a logo of the whole input
    # costs seconds per track
    out.track_jobs.append((cname, feat, (hyp[0] * dna.numpy()[0])[:, flank:flank + window], label[0],
                           float(prob[top[0]]), in_region))
    log.info("cluster %s, %s: %d window(s), p %.2f, accessibility share %.2f, %d motif instance(s) (%s)", cname,
             feat, len(top), float(prob[top].mean()), row["accessibility_share"], sig.height,
             row["top_instance_motifs"] or "-")


def _write_cluster_interpretation(outdir: Path, out: _Explained, in_region: bool, context: int, window: int,
                                  cfg: CellInterpretConfig) -> None:
    """Write ``clusters.tsv``, ``instances.tsv``, ``region.tsv`` (with a region), the attributions and the tracks."""
    outdir.mkdir(parents=True, exist_ok=True)
    cl_schema = {"cluster": pl.Utf8, "feature": pl.Utf8, "model": pl.Utf8, "tf": pl.Utf8, "n_windows": pl.Int64,
                 "mean_probability": pl.Float64, "accessibility_share": pl.Float64, "n_instances": pl.Int64,
                 "n_own_motif_instances": pl.Int64, "top_instance_motifs": pl.Utf8}
    _tsv(pl.DataFrame(out.cluster_rows, schema=cl_schema), outdir / "clusters.tsv")
    inst_schema = {"cluster": pl.Utf8, "feature": pl.Utf8, "window": pl.Utf8, "start": pl.Int64, "end": pl.Int64,
                   "attribution": pl.Float64, "jaspar_id": pl.Utf8, "jaspar_name": pl.Utf8, "p_value": pl.Float64,
                   "relation": pl.Utf8}
    _tsv(pl.DataFrame([{k: r[k] for k in inst_schema} for r in out.inst_rows], schema=inst_schema),
         outdir / "instances.tsv")
    if in_region:
        _tsv(pl.DataFrame(out.region_rows, schema={"cluster": pl.Utf8, "chrom": pl.Utf8, "start": pl.Int64,
                                                   "end": pl.Int64, "feature": pl.Utf8, "probability": pl.Float64}),
             outdir / "region.tsv")
    with atomic_path(outdir / "attributions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **out.arrays)
    from scfan.interpret.logos import attribution_track

    for cname, feat, contrib, where, p, track_in_region in out.track_jobs:
        sub = outdir / ("region" if track_in_region else "tracks")
        sub.mkdir(exist_ok=True)
        safe = feat.replace(":", "_").replace("/", "_")
        attribution_track(contrib, sub / f"{cname}_{safe}.png", offset=(context - window) // 2,
                          title=f"cluster {cname}, {feat}: {where} (p = {p:.2f}, {cfg.part})")


def interpret_clusters(cells_path: str | Path, clusters_path: str | Path, model_args: list[str],
                       fragments: dict[str, str | Path], genome_fa: str | Path, mappability: str | Path,
                       differential: Path | None, cfg: CellInterpretConfig, outdir: str | Path) -> dict:
    """Explain each wanted cluster's TF calls on its pooled input; write the outputs listed in the module docstring."""
    from scfan.genome import Genome
    from scfan.sc.cells_file import read_cells_for_inference
    from scfan.sc.cluster_tracks import read_clusters
    from scfan.sc.pooling import PooledTracks
    from scfan.sc.predict import peak_windows
    from scfan.tracks import open_bigwig

    t0 = time.perf_counter()
    outdir = Path(outdir)
    models, context, window, features = _load_models(model_args)
    lib, motifs = _library_motifs()
    by_base = {e.matrix_id.split(".")[0]: e for e in lib}
    with read_cells_for_inference(cells_path) as cells, Genome(genome_fa) as genome:
        sizes = dict(genome.sizes)
        region = parse_region(cfg.region, sizes, context, str(genome_fa)) if cfg.region else None
        cell_ids = list(cells.obs_names)
        of_cell, names = read_clusters(clusters_path, cell_ids)
        bad = [c for c in cfg.clusters if c not in names]
        if bad:
            raise ScfanError(f"--clusters: cluster {bad[0]!r} is not in {clusters_path} (have {', '.join(names)})")
        wanted = [c for c in names if not cfg.clusters or c in cfg.clusters]
        todo = pick_features(features, wanted, cfg, differential)
        pool = cluster_pooling(cells.obsp["pooling"], of_cell, len(names))
        totals = 2.0 * cells.obs["n_fragments"].to_numpy(dtype=np.float64)
        windows = peak_windows(cells.var_names, sizes, window, context, cells_path)
        # each cluster's mean counts per peak: where it is open enough to have calls worth explaining
        peak_acc = None if region else np.asarray(
            (cluster_pooling(sp.identity(len(cell_ids), format="csr"), of_cell, len(names)) @ cells.X).todense())
        bw = open_bigwig(mappability)
        out = _Explained()
        try:
            with PooledTracks(fragments, cell_ids, pool, totals, sum(sizes.values())) as tracks:
                inputs = ClusterInputs(tracks, genome, bw, context)
                flank = (context - window) // 2
                for cname in wanted:
                    k = names.index(cname)
                    feats = todo.get(cname, [])
                    if region is not None:
                        feats = feats or features
                    if not feats:
                        continue
                    ch, ws = _candidate_windows(k, region, sizes, window, flank, windows, peak_acc, cfg)
                    x = inputs.batch(k, ch, ws - flank)
                    for feat in feats:
                        _explain_feature(cname, feat, models, x, ch, ws, region is not None, window, flank, cfg, lib,
                                         motifs, by_base, out)
        finally:
            bw.close()
    _write_cluster_interpretation(outdir, out, region is not None, context, window, cfg)
    summary = {"clusters": wanted, "features": todo, "region": cfg.region, "config": asdict(cfg),
               "seconds": round(time.perf_counter() - t0, 1)}
    write_json(outdir / "interpret.json", summary)
    return summary


def _tsv(df: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.write_csv(tmp, separator="\t", float_precision=6)
