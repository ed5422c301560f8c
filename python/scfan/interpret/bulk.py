"""``scfan bulk interpret``: what a trained model learned, per TF.

For each TF: the top positive windows of a split (held-out chromosomes by default) ranked by the model's probability;
DeepLIFT/SHAP attributions of the TF's logit on their DNA (:mod:`scfan.interpret.attribution`), for scFAN's network
alone and for the whole model; the share of the calls that rests on accessibility; TF-MoDISco motifs from the
attributions and their TOMTOM matches in JASPAR; logos; and scFAN's own first-layer filter analysis.

Outputs (``outdir``): ``motifs.tsv`` (one row per TF × part × motif, or one row saying why there is none),
``summary.tsv`` (one row per TF × part: the top motif's match, whether it is the TF's own, the accessibility share),
``filters.tsv`` (first-layer filters matched to JASPAR), ``attributions.npz``, ``logos/<tf>_<part>_<motif>.png`` (the
motif beside its JASPAR match), ``tracks/<tf>_<part>.png`` (the top window's attribution track), ``interpret.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch

from scfan._io import atomic_path, write_json
from scfan.errors import InputFileError, ScfanError
from scfan.interpret.attribution import (
    PARTS,
    AttributionConfig,
    AttributionNet,
    accessibility_share,
    deep_lift_shap,
    sequence_accessibility_split,
)
from scfan.interpret.motifs import (
    DiscoveryConfig,
    discover_motifs,
    filter_ppms,
    jaspar_library,
    match_to_jaspar,
    relation,
)

log = logging.getLogger(__name__)

MOTIF_COLUMNS = ["tf", "part", "motif", "n_seqlets", "length", "consensus", "jaspar_id", "jaspar_name", "q_value",
                 "relation", "own_family", "second_match", "note"]
SUMMARY_COLUMNS = ["tf", "part", "n_windows", "top_motif", "top_jaspar_id", "top_jaspar_name", "top_q_value",
                   "own_motif_recovered", "best_own_q_value", "accessibility_share", "attribution_sum", "note"]


@dataclass(frozen=True)
class InterpretConfig:
    split: str = "test"
    n_windows: int = 200
    min_windows: int = 30
    #: bp around the window centre given to TF-MoDISco (the attributions cover the whole model input)
    central: int = 400
    parts: tuple[str, ...] = PARTS
    tfs: tuple[str, ...] = ()
    q_threshold: float = 0.05
    #: below this share of the calls resting on the sequence (1 − accessibility share) a part has no sequence signal
    #: worth a motif search: TF-MoDISco on such attributions only matches noise (long low-complexity matrices)
    min_sequence_share: float = 0.05
    seed: int = 0
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)


def consensus(ppm: np.ndarray) -> str:
    """IUPAC-free consensus: the most likely base, lower case where it has under half the probability."""
    return "".join(("ACGT"[i] if p >= 0.5 else "acgt"[i]) for i, p in zip(ppm.argmax(0), ppm.max(0), strict=True))


def check_request(spec, df: pl.DataFrame, windows_path: Path, cfg: InterpretConfig) -> list[str]:
    """The TFs to interpret; one clear error for a TF the model lacks or windows without the model's labels."""
    missing = [t for t in spec.tf_names if t not in df.columns]
    if missing:
        raise InputFileError(windows_path, f"has no label column for the model's TF(s) {', '.join(missing)}; expected "
                             "the windows.parquet the model was trained on")
    unknown = [t for t in cfg.tfs if t not in spec.tf_names]
    if unknown:
        raise ScfanError(f"TF {unknown[0]!r} is not in the model (its TFs: {', '.join(spec.tf_names)})")
    if cfg.split not in df["split"].unique().to_list():
        raise InputFileError(windows_path, f"has no window in split {cfg.split!r}")
    if cfg.central <= 0:
        raise ScfanError(f"--central must be positive, got {cfg.central}")
    return list(cfg.tfs) or list(spec.tf_names)


def _first_layer_activations(net, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net.body[0](x).numpy()


class GenomeWindows:
    """The positive windows of a split of ``windows.parquet``, read from the genome (and tracks) in memory."""

    def __init__(self, spec, df: pl.DataFrame, src, windows_path: Path, cfg: InterpretConfig):
        from scfan.bulk.data import windows_arrays

        self.tfs = check_request(spec, df, windows_path, cfg)
        sub = df.filter(pl.col("split") == cfg.split)
        self.chroms, self.starts, self.labels = windows_arrays(sub, list(spec.tf_names))
        self.src, self.spec, self.seed = src, spec, cfg.seed
        self.flank = (spec.context - spec.window) // 2
        self.where = f"split {cfg.split!r}"

    def positives(self, ti: int) -> tuple[torch.Tensor, np.ndarray]:
        """Inputs of the TF's positive windows and their names (``chrom:start-end`` of the labelled window)."""
        pos = np.flatnonzero(self.labels[:, ti] > 0)
        st = self.starts[pos]
        names = np.array([f"{c}:{s}-{s + self.spec.window}" for c, s in zip(self.chroms[pos], st, strict=True)])
        return self.src.batch(self.chroms[pos], st - self.flank, self.spec.context), names

    def sample(self, n: int) -> torch.Tensor:
        pos = np.flatnonzero(self.labels.max(axis=1) > 0)
        pick = np.sort(np.random.default_rng(self.seed).choice(pos, size=min(len(pos), n), replace=False))
        return self.src.batch(self.chroms[pick], self.starts[pick] - self.flank, self.spec.context)


class FastaSequences:
    """Equal-length sequences of a FASTA (e.g. ChIP peaks), each a positive of every TF of a sequence-only model."""

    def __init__(self, spec, fasta: Path, cfg: InterpretConfig):
        from scfan.bulk.inputs import codes_to_onehot, encode_codes
        from scfan.bulk.seqonly import read_fasta_records

        if spec.uses_tracks:
            raise ScfanError("--fasta explains sequence-only models; this model also reads accessibility tracks: "
                             "give --windows with --atac and --mappability")
        recs = read_fasta_records(fasta)
        bad = next(((n, len(s)) for n, s in recs if len(s) != spec.context), None)
        if bad is not None:
            raise InputFileError(fasta, f"record {bad[0]!r} is {bad[1]} bp; the model reads {spec.context} bp")
        unknown = [t for t in cfg.tfs if t not in spec.tf_names]
        if unknown:
            raise ScfanError(f"TF {unknown[0]!r} is not in the model (its TFs: {', '.join(spec.tf_names)})")
        self.tfs = list(cfg.tfs) or list(spec.tf_names)
        self.x = torch.from_numpy(codes_to_onehot(np.stack([encode_codes(s) for _, s in recs])))
        self.names = np.array([n for n, _ in recs])
        self.seed = cfg.seed
        self.where = f"{fasta}"

    def positives(self, ti: int) -> tuple[torch.Tensor, np.ndarray]:
        return self.x, self.names

    def sample(self, n: int) -> torch.Tensor:
        return self.x[:n]


@dataclass
class _TopWindows:
    """One TF's top-scoring positive windows, as attributed: the DNA, tracks and their names and probabilities."""

    tf: str
    ti: int
    own: object  # the JASPAR entry of the TF's own motif, or None
    dna: torch.Tensor
    tracks: torch.Tensor | None
    onehot: np.ndarray
    names: np.ndarray
    top: np.ndarray
    prob: np.ndarray


def _interpret_part(net, spec, cfg: InterpretConfig, w: _TopWindows, part: str, library, by_id: dict,
                    window: tuple[int, int], logos: bool, arrays: dict, logo_jobs: list,
                    track_jobs: list) -> tuple[list[dict], dict, float]:
    """Attribute one TF's windows through one part of the network, discover and match its motifs.

    Adds the attributions to ``arrays`` and the figures to draw to ``logo_jobs`` / ``track_jobs``; returns the
    motif rows, the summary row and the seconds taken.
    """
    lo, hi = window
    tf, top, onehot = w.tf, w.top, w.onehot
    t = time.perf_counter()
    anet = AttributionNet(net, part)
    hyp, rel = deep_lift_shap(anet, w.dna, w.tracks, w.ti, cfg.attribution)
    if rel > 0.01:
        log.warning("%s (%s): DeepLIFT convergence deltas are %.1f%% of the output differences", tf, part,
                    100 * rel)
    contrib = (hyp * onehot).sum(axis=1)
    share = 0.0
    if w.tracks is not None:
        ps, pa = sequence_accessibility_split(anet, w.dna, w.tracks, w.ti, spec.track_norm,
                                              cfg.attribution.n_shuffles, cfg.seed, cfg.attribution.device)
        share = accessibility_share(ps, pa)
    arrays[f"{tf}/{part}/hypothetical"] = hyp[:, :, lo:hi].astype(np.float16)
    if logos:
        track_jobs.append((tf, part, (hyp[0] * onehot[0])[:, lo:hi], w.names[top[0]],
                           float(w.prob[top[0]])))
    no_sequence = w.tracks is not None and 1.0 - share < cfg.min_sequence_share
    motifs = [] if no_sequence else discover_motifs(onehot[:, :, lo:hi], hyp[:, :, lo:hi], cfg.discovery)
    matches = match_to_jaspar([m.ppm for m in motifs], library)
    rows = []
    for m, ms in zip(motifs, matches, strict=True):
        best = ms[0]
        rel_kind = relation(best, w.own, tf)
        rows.append({"tf": tf, "part": part, "motif": m.name, "n_seqlets": m.n_seqlets,
                     "length": m.ppm.shape[1], "consensus": consensus(m.ppm), "jaspar_id": best.matrix_id,
                     "jaspar_name": best.name, "q_value": best.q_value, "relation": rel_kind,
                     "own_family": rel_kind != "other",
                     "second_match": f"{ms[1].matrix_id} {ms[1].name}" if len(ms) > 1 else "",
                     "note": ""})
        if logos:
            logo_jobs.append((tf, part, m, best, by_id.get(best.matrix_id)))
    if not rows:
        note = ("TF-MoDISco found no motif in the attributions" if not no_sequence else
                f"the calls rest on accessibility ({share:.0%}); the sequence carries "
                f"{1 - share:.0%} of them: no motif learned (not searched)")
        log.warning("%s (%s): %s", tf, part, note)
        rows.append(_empty_motif_row(tf, part, note))
    summary_row = _summary_row(tf, part, len(top), rows, share, float(contrib.sum(1).mean()), cfg.q_threshold)
    seconds = round(time.perf_counter() - t, 2)
    log.info("%s (%s): %d windows, %d motif(s), top %s (q %.2g), accessibility share %.2f, %.1f s", tf, part,
             len(top), len(motifs), rows[0]["jaspar_name"] or "-", rows[0]["q_value"], share, seconds)
    return rows, summary_row, seconds


def _write_interpretation(outdir: Path, spec, motif_rows: list[dict], summary_rows: list[dict],
                          filter_rows: list[dict], arrays: dict, window: tuple[int, int], logo_jobs: list,
                          track_jobs: list) -> None:
    """Write the tables, the attributions and the figures listed in the module docstring."""
    lo, hi = window
    outdir.mkdir(parents=True, exist_ok=True)
    _write_tsv(pl.DataFrame(motif_rows, schema=_motif_schema()), outdir / "motifs.tsv")
    _write_tsv(pl.DataFrame(summary_rows, schema=_summary_schema()), outdir / "summary.tsv")
    _write_tsv(pl.DataFrame(filter_rows, schema={"filter": pl.Int64, "n_sites": pl.Int64, "consensus": pl.Utf8,
                                                  "jaspar_id": pl.Utf8, "jaspar_name": pl.Utf8, "q_value": pl.Float64,
                                                  "model_tf": pl.Utf8}), outdir / "filters.tsv")
    with atomic_path(outdir / "attributions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays, central_offset=np.array(lo),
                                window=np.array(spec.window), context=np.array(spec.context))
    if logo_jobs:
        from scfan.interpret.logos import motif_logo

        (outdir / "logos").mkdir(exist_ok=True)
        for tf, part, m, best, entry in logo_jobs:
            motif_logo(m, best, entry, outdir / "logos" / f"{tf}_{part}_{m.name}.png", title=f"{tf} ({part})")
    if track_jobs:
        from scfan.interpret.logos import attribution_track

        (outdir / "tracks").mkdir(exist_ok=True)
        for tf, part, contrib, where, p in track_jobs:
            attribution_track(contrib, outdir / "tracks" / f"{tf}_{part}.png", offset=lo,
                              title=f"{tf} ({part}): the top window {where} (p = {p:.2f}), central {hi - lo} bp")


def interpret_model(net, spec, source, cfg: InterpretConfig, outdir: str | Path, logos: bool = True) -> dict:
    """Interpret every requested TF of a model on ``source`` (:class:`GenomeWindows` or :class:`FastaSequences`);
    write the outputs listed in the module docstring."""
    from scfan.bulk.pwm import motif_for_tf
    from scfan.inference import predict_batches

    t0 = time.perf_counter()
    tfs = source.tfs
    outdir = Path(outdir)
    library = jaspar_library()
    by_id = {e.matrix_id: e for e in library}
    by_base = {e.matrix_id.split(".")[0]: e for e in library}
    lo = max(0, spec.context // 2 - cfg.central // 2)
    hi = min(spec.context, lo + cfg.central)
    motif_rows, summary_rows, arrays, timings = [], [], {}, {}
    logo_jobs, track_jobs = [], []
    for tf in tfs:
        ti = spec.tf_names.index(tf)
        own_id = motif_for_tf(tf, spec.motifs.get(tf))
        own = (by_id.get(own_id) or by_base.get(str(own_id).split(".")[0])) if own_id else None
        x, names = source.positives(ti)
        if len(x) < cfg.min_windows:
            note = f"too few positive windows in {source.where} for TF-MoDISco ({len(x)} < {cfg.min_windows})"
            log.warning("%s: %s", tf, note)
            for part in cfg.parts:
                motif_rows.append(_empty_motif_row(tf, part, note))
                summary_rows.append(_empty_summary_row(tf, part, len(x), note))
            continue
        prob = predict_batches(net, x, 256)[:, ti]
        top = np.argsort(-prob, kind="stable")[: cfg.n_windows]
        x = x[torch.from_numpy(top)]
        dna = x[:, :4].contiguous()
        tracks = x[:, 4:].contiguous() if spec.uses_tracks else None
        onehot = dna.numpy()
        arrays[f"{tf}/window"] = names[top]
        arrays[f"{tf}/onehot"] = onehot[:, :, lo:hi].astype(np.uint8)
        arrays[f"{tf}/prob"] = prob[top].astype(np.float32)
        w = _TopWindows(tf, ti, own, dna, tracks, onehot, names, top, prob)
        for part in cfg.parts:
            rows, summary_row, seconds = _interpret_part(net, spec, cfg, w, part, library, by_id, (lo, hi), logos,
                                                         arrays, logo_jobs, track_jobs)
            motif_rows.extend(rows)
            summary_rows.append(summary_row)
            timings[f"{tf}/{part}"] = seconds
    filter_rows = _first_layer_filters(net, spec, source, library, cfg)
    _write_interpretation(outdir, spec, motif_rows, summary_rows, filter_rows, arrays, (lo, hi), logo_jobs,
                          track_jobs)
    summary = {"tfs": tfs, "source": source.where, "parts": list(cfg.parts), "jaspar_release": _jaspar_release(),
               "config": asdict(cfg), "seconds": round(time.perf_counter() - t0, 1), "seconds_per_tf_part": timings}
    write_json(outdir / "interpret.json", summary)
    return summary


def _jaspar_release() -> str:
    import warnings

    from pyjaspar import jaspardb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(jaspardb().release)


def _first_layer_filters(net, spec, source, library, cfg: InterpretConfig) -> list[dict]:
    """scFAN's analysis: first-layer filters' PPMs from their strongest sites in positive windows, matched to JASPAR."""
    x = source.sample(2000)
    if not len(x):
        return []
    act = _first_layer_activations(net, x)
    conv = net.body[0]
    ppms = filter_ppms(conv.weight.detach().numpy(), x[:, :4].numpy(), act)
    keep = [i for i, p in enumerate(ppms) if p is not None]
    matches = match_to_jaspar([ppms[i] for i in keep], library, n_best=1)
    names = {t.upper(): t for t in spec.tf_names}
    rows = []
    for i, ms in zip(keep, matches, strict=True):
        m = ms[0]
        n_sites = int((act[:, i] > 0.5 * act[:, i].max()).sum())
        hit = next((names[n.upper()] for n in m.name.replace("::", "/").split("/") if n.upper() in names), "")
        rows.append({"filter": i, "n_sites": n_sites, "consensus": consensus(ppms[i]), "jaspar_id": m.matrix_id,
                     "jaspar_name": m.name, "q_value": m.q_value, "model_tf": hit if m.q_value < cfg.q_threshold
                     else ""})
    return rows


def _motif_schema() -> dict:
    return {"tf": pl.Utf8, "part": pl.Utf8, "motif": pl.Utf8, "n_seqlets": pl.Int64, "length": pl.Int64,
            "consensus": pl.Utf8, "jaspar_id": pl.Utf8, "jaspar_name": pl.Utf8, "q_value": pl.Float64,
            "relation": pl.Utf8, "own_family": pl.Boolean, "second_match": pl.Utf8, "note": pl.Utf8}


def _summary_schema() -> dict:
    return {"tf": pl.Utf8, "part": pl.Utf8, "n_windows": pl.Int64, "top_motif": pl.Utf8, "top_jaspar_id": pl.Utf8,
            "top_jaspar_name": pl.Utf8, "top_q_value": pl.Float64, "own_motif_recovered": pl.Boolean,
            "best_own_q_value": pl.Float64, "accessibility_share": pl.Float64, "attribution_sum": pl.Float64,
            "note": pl.Utf8}


def _empty_motif_row(tf: str, part: str, note: str) -> dict:
    return {"tf": tf, "part": part, "motif": "", "n_seqlets": 0, "length": 0, "consensus": "", "jaspar_id": "",
            "jaspar_name": "", "q_value": float("nan"), "relation": "", "own_family": False, "second_match": "",
            "note": note}


def _empty_summary_row(tf: str, part: str, n: int, note: str) -> dict:
    return {"tf": tf, "part": part, "n_windows": n, "top_motif": "", "top_jaspar_id": "", "top_jaspar_name": "",
            "top_q_value": float("nan"), "own_motif_recovered": False, "best_own_q_value": float("nan"),
            "accessibility_share": float("nan"), "attribution_sum": float("nan"), "note": note}


def _summary_row(tf: str, part: str, n: int, rows: list[dict], share: float, attr_sum: float, q: float) -> dict:
    """The top motif (most seqlets) and whether the TF's own motif is among the discovered ones at q < ``q``."""
    top = rows[0]
    own = [r for r in rows if r["own_family"] and r["q_value"] < q]
    note = top["note"]
    if top["motif"] and not (top["own_family"] and top["q_value"] < q):
        note = (f"top motif matches {top['jaspar_name']} ({top['jaspar_id']}), not {tf}'s own: a model to distrust"
                if top["q_value"] < q else f"top motif matches nothing in JASPAR at q < {q}")
    return {"tf": tf, "part": part, "n_windows": n, "top_motif": top["motif"], "top_jaspar_id": top["jaspar_id"],
            "top_jaspar_name": top["jaspar_name"], "top_q_value": top["q_value"],
            "own_motif_recovered": bool(own),
            "best_own_q_value": min((r["q_value"] for r in own), default=float("nan")),
            "accessibility_share": share, "attribution_sum": attr_sum, "note": note}


def _write_tsv(df: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.write_csv(tmp, separator="\t", float_precision=6)
