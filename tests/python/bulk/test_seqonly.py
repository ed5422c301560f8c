"""Sequence-only mode on real data: GM12878 CTCF ChIP peak sequences against dinucleotide-shuffled negatives."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from scfan.bulk.seqonly import SeqOnlyConfig, dinucleotide_shuffle, read_fasta_records, sequence_only_experiment


def _dinucs(s: str) -> Counter:
    return Counter(s[i : i + 2] for i in range(len(s) - 1))


def test_dinucleotide_shuffle_keeps_dinucleotides_and_ends_but_changes_the_sequence(shared_data):
    recs = read_fasta_records(shared_data / "chip_sequences" / "ctcf_gm12878.fa")
    rng = np.random.default_rng(0)
    changed = 0
    for _, seq in recs[:50]:
        sh = dinucleotide_shuffle(seq, rng)
        assert len(sh) == len(seq) and sh[0] == seq[0] and sh[-1] == seq[-1]
        assert _dinucs(sh) == _dinucs(seq)
        changed += sh != seq
    assert changed == 50
    # seeded
    assert dinucleotide_shuffle(recs[0][1], np.random.default_rng(5)) == dinucleotide_shuffle(
        recs[0][1], np.random.default_rng(5))


@pytest.mark.slow
def test_sequence_only_model_learns_real_ctcf_peaks(shared_data):
    """Small scFANet, few epochs: held-out AUROC well above chance (the benchmark runs the full-size model)."""
    res = sequence_only_experiment(shared_data / "chip_sequences" / "ctcf_gm12878.fa",
                                   SeqOnlyConfig(arch="small", epochs=8, seed=0, num_threads=2))
    print(f"sequence-only CTCF GM12878 (small, 8 epochs): held-out AUROC {res['auroc']:.3f}, "
          f"AUPRC {res['auprc']:.3f}")
    assert res["n_test"] == 200 and res["length"] == 200
    assert res["auroc"] >= 0.85


def test_cli_sequence_only_writes_metrics(shared_data, tmp_path):
    fa = tmp_path / "few.fa"
    recs = read_fasta_records(shared_data / "chip_sequences" / "ctcf_gm12878.fa")[:60]
    fa.write_text("".join(f">{n}\n{s}\n" for n, s in recs))
    out = tmp_path / "seqonly"
    r = subprocess.run([sys.executable, "-m", "scfan", "bulk", "sequence-only", "--fasta", str(fa), "--epochs", "1",
                        "--outdir", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "sequence_only.json").read_text())
    assert 0 <= m["auroc"] <= 1 and m["n_test"] == 24 and m["config"]["epochs"] == 1


def test_cli_sequence_only_rejects_mixed_lengths(tmp_path):
    fa = tmp_path / "mixed.fa"
    fa.write_text(">a\nACGTACGTAC\n>b\nACGTAC\n")
    r = subprocess.run([sys.executable, "-m", "scfan", "bulk", "sequence-only", "--fasta", str(fa),
                        "--outdir", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and str(fa) in r.stderr and "different lengths" in r.stderr
    assert not (tmp_path / "o").exists()
