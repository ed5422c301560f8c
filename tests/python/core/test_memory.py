"""scfan.memory: the allocators of polars and pyarrow are told to give freed pages back at once (issue 34)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import os, sys
from scfan.memory import return_freed_memory_at_once
return_freed_memory_at_once()
import polars, pyarrow
print(os.environ.get("_RJEM_MALLOC_CONF"), os.environ.get("MIMALLOC_PURGE_DELAY"))
"""


def _run(**env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("_RJEM_MALLOC_CONF", "MIMALLOC_PURGE_DELAY")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env={**base, **env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


# polars puts its own defaults in front of the variable when imported; jemalloc takes the last value of an option
def test_set_before_the_libraries_are_imported():
    jemalloc, mimalloc = _run().split()
    assert jemalloc.endswith("dirty_decay_ms:0,muzzy_decay_ms:0") and mimalloc == "0"


def test_a_setting_of_the_user_is_kept():
    jemalloc, mimalloc = _run(MIMALLOC_PURGE_DELAY="50", _RJEM_MALLOC_CONF="narenas:2").split()
    assert jemalloc.endswith("narenas:2") and mimalloc == "50"
