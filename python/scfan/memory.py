"""Freed memory goes back to the operating system at once, so that a command's peak is what it holds at one time.

polars allocates through its own jemalloc and pyarrow through mimalloc; both keep freed pages for a while and purge
them only when they allocate again: a large table read, turned into numpy arrays and dropped (``bulk train``: ~1.1 GiB
at 1/5 of hg38, issue 34) then stays resident beside the genome loaded next. Each allocator reads its settings once,
when its library is imported: jemalloc from ``_RJEM_MALLOC_CONF``, mimalloc from ``MIMALLOC_PURGE_DELAY``.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

#: purge freed pages immediately (no dirty or muzzy pages kept for reuse)
JEMALLOC_RETURN_AT_ONCE = "dirty_decay_ms:0,muzzy_decay_ms:0"


def return_freed_memory_at_once() -> None:
    """Set polars' jemalloc and pyarrow's mimalloc to give freed pages back at once (call before either is imported;
    settings the user made in those variables are kept). Results are unchanged; resident memory falls sooner."""
    for module, var, value in (("polars", "_RJEM_MALLOC_CONF", JEMALLOC_RETURN_AT_ONCE),
                               ("pyarrow", "MIMALLOC_PURGE_DELAY", "0")):
        if module in sys.modules:
            log.debug("%s already imported: its allocator keeps freed pages for a while", module)
        else:
            os.environ.setdefault(var, value)
