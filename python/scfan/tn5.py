"""Tn5 insertion sites: one definition for bulk reads, single-cell read pairs and fragment files.

A Tn5 dimer inserts with a 9 bp duplication, so the cut site is 4 bp inside a forward read's 5' end and 5 bp inside a
reverse read's 5' end (cellranger-atac / ArchR convention). In 0-based coordinates:

- forward read: insertion at ``reference_start + 4``;
- reverse read: insertion at ``reference_end - 6`` (its 5' base is ``reference_end - 1``);
- a fragment ``[start, end)`` (10x ``fragments.tsv.gz``, built from a proper pair as
  ``start = fwd.reference_start + 4``, ``end = rev.reference_end - 5``) has its two insertions at ``start`` and
  ``end - 1``.

So the pseudo-bulk of a sample's fragments and the bulk track of the same reads agree base for base.
"""

from __future__ import annotations

import numpy as np

FORWARD_SHIFT = 4
REVERSE_SHIFT = 5


def read_insertion(reference_start: int, reference_end: int, is_reverse: bool) -> int:
    """0-based insertion site of one aligned read."""
    return reference_end - REVERSE_SHIFT - 1 if is_reverse else reference_start + FORWARD_SHIFT


def fragment_from_pair(leftmost_start: int, template_length: int) -> tuple[int, int]:
    """Fragment ``[start, end)`` of a proper pair from its leftmost mate's start and (positive) template length."""
    return leftmost_start + FORWARD_SHIFT, leftmost_start + template_length - REVERSE_SHIFT


def fragment_insertions(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two insertion sites (``start``, ``end - 1``) of each fragment ``[start, end)``."""
    return np.asarray(starts), np.asarray(ends) - 1
