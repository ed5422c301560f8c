"""Motif logos (scfan.interpret.logos): the JASPAR panel drawn on the discovered motif's x axis, reverse-complemented
and shifted as TOMTOM aligned the two."""

from __future__ import annotations

import numpy as np
import pytest

from scfan.interpret.logos import align_match, motif_logo, reverse_complement
from scfan.interpret.motifs import Motif, jaspar_library, match_to_jaspar

CTCF = "MA0139"


def _ctcf():
    return next(e for e in jaspar_library() if e.matrix_id.split(".")[0] == CTCF)


def test_reverse_complement_of_a_non_palindromic_matrix_is_undone_by_a_second():
    ppm = np.eye(4)[:, [0, 0, 2, 3, 1]]  # AAGTC
    rc = reverse_complement(ppm)
    assert "".join("ACGT"[i] for i in rc.argmax(0)) == "GACTT"
    np.testing.assert_array_equal(reverse_complement(rc), ppm)


def test_a_reverse_complement_match_shifted_by_two_is_drawn_reverse_complemented_under_its_columns():
    """The motif is 2 flat columns then CTCF's reverse complement: TOMTOM matches CTCF on the minus strand at offset
    -2, and the JASPAR panel is CTCF reverse-complemented, starting 2 columns in, so that each of its columns sits
    under the motif column it matched (and none of that without the alignment: CTCF as stored does not)."""
    ctcf = _ctcf()
    rc = reverse_complement(ctcf.ppm)
    query = np.concatenate([np.full((4, 2), 0.25), rc], axis=1)
    best = match_to_jaspar([query], jaspar_library())[0][0]
    assert best.matrix_id.split(".")[0] == CTCF
    assert (best.strand, best.offset) == ("-", -2)

    al = align_match(query.shape[1], ctcf.ppm, best.offset, best.strand)
    assert (al.query_start, al.target_start, al.width) == (0, 2, query.shape[1])
    np.testing.assert_array_equal(al.target, rc)
    drawn = al.place(al.target, al.target_start)
    np.testing.assert_array_equal(drawn[:, :2], 0.0)  # empty columns over the motif's flat flank
    np.testing.assert_allclose(drawn[:, 2:], query[:, 2:])  # the matched columns line up
    # unaligned (the panel as it was drawn before): CTCF forward from column 0 does not match the motif
    assert not np.allclose(al.place(ctcf.ppm, 0)[:, 2:], query[:, 2:])


def test_a_forward_match_inside_a_longer_matrix_pads_the_motif_panel():
    """A motif that is columns 3..12 of CTCF: offset +3 on the plus strand, so the motif starts 3 columns into the
    shared axis and the JASPAR matrix, as stored, at column 0."""
    ctcf = _ctcf()
    query = ctcf.ppm[:, 3:13]
    best = match_to_jaspar([query], jaspar_library())[0][0]
    assert best.matrix_id.split(".")[0] == CTCF
    assert (best.strand, best.offset) == ("+", 3)
    al = align_match(query.shape[1], ctcf.ppm, best.offset, best.strand)
    assert (al.query_start, al.target_start, al.width) == (3, 0, ctcf.ppm.shape[1])
    np.testing.assert_array_equal(al.target, ctcf.ppm)
    np.testing.assert_allclose(al.place(query, al.query_start)[:, 3:13], al.target[:, 3:13])


@pytest.mark.parametrize("offset,strand,expect", [(0, "+", (0, 0, 5)), (2, "+", (2, 0, 6)), (-3, "-", (0, 3, 8)),
                                                  (4, "-", (4, 0, 8))])
def test_alignment_arithmetic(offset, strand, expect):
    """Query of 4 columns, target of 5: query column i faces target column i + offset on the shared axis."""
    target = np.random.default_rng(0).dirichlet(np.ones(4), size=5).T
    al = align_match(4, target, offset, strand)
    assert (al.query_start, al.target_start, al.width) == expect
    for i in range(4):
        j = i + offset
        if 0 <= j < 5:
            assert al.query_start + i == al.target_start + j


def test_an_unknown_strand_is_refused():
    with pytest.raises(ValueError, match="strand"):
        align_match(4, np.full((4, 5), 0.25), 0, "?")


def test_motif_logo_draws_the_aligned_panels(tmp_path):
    ctcf = _ctcf()
    rc = reverse_complement(ctcf.ppm)
    ppm = np.concatenate([np.full((4, 2), 0.25), rc], axis=1)
    best = match_to_jaspar([ppm], jaspar_library())[0][0]
    out = tmp_path / "logo.png"
    motif_logo(Motif("pattern_0", ppm, ppm - 0.25, 40), best, ctcf, out, title="CTCF (model)")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
