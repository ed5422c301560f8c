"""One thread count for every library that computes in this process: the CPUs the task was given, no more.

On Slurm, AWS Batch or any cgroup-limited host a task owns ``task.cpus`` cores, while torch, OpenBLAS, OpenMP,
numba and polars each start one thread per core of the *machine*: two busy jobs on one node then run 10x slower than
one thread each. :func:`use_threads` sets the count for all of them at once; the ``--threads`` option of the
computing commands (``scfan bulk prepare/train/evaluate/predict/sequence-only``, ``scfan simulate``) calls it
before anything is computed, and the pipeline's modules pass ``--threads ${task.cpus}``.

What can still change after a library is imported, and what cannot:

* torch: ``set_num_threads`` at any time; ``set_num_interop_threads`` only before the inter-op pool has started
  (a later call is skipped). Imported later, torch sizes its intra-op pool from ``OMP_NUM_THREADS``, set here, but
  its inter-op pool from the core count: commands that compute with torch pass ``load_torch=True``.
* BLAS / OpenMP libraries already loaded (OpenBLAS, MKL, libgomp, ...): through ``threadpoolctl`` when it is
  installed; loaded later, they read ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ...
* numba: already imported, ``numba.set_num_threads`` (for the calling thread, at most
  ``numba.config.NUMBA_NUM_THREADS``, the pool size fixed at import); imported later, its pool is sized from
  ``NUMBA_NUM_THREADS``, set here. The variable is left alone once numba is imported: numba refuses a new value
  after its threads have started.
* polars: its pool is sized from ``POLARS_MAX_THREADS`` when polars is imported and cannot change afterwards. The
  CLI commands call :func:`use_threads` first thing, before they import polars; if polars was imported earlier the
  variable still reaches child processes and a debug message names the size in use.
"""

from __future__ import annotations

import logging
import os
import sys

from scfan.errors import ScfanError

log = logging.getLogger(__name__)

#: Read once, when the library that owns the pool is loaded.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "POLARS_MAX_THREADS")


def available_cpus() -> int:
    """The number of CPUs this process may run on.

    Returns
    -------
    int
        The size of the process's CPU affinity set (``os.sched_getaffinity``), which follows cgroup cpusets, Slurm
        and ``taskset``; ``os.cpu_count()`` where the platform has no affinity call. At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def use_threads(n: int | None = None, *, load_torch: bool = False) -> int:
    """Make every computing library of this process use ``n`` threads.

    Parameters
    ----------
    n : int or None
        Threads, at least 1; None for :func:`available_cpus` (never the machine's full core count).
    load_torch : bool
        Import torch now, after the variables above are set, so that both its pools are sized (for commands that
        compute with torch); otherwise torch is only set if it is already imported.

    Returns
    -------
    int
        The thread count applied.

    Raises
    ------
    ScfanError
        When ``n`` is not a whole number >= 1.

    Notes
    -----
    Nothing is restored afterwards: the count holds for the rest of the process (see the module docstring for
    the libraries that only read it when they are imported).
    """
    if n is None:
        n = available_cpus()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ScfanError(f"--threads {n}: expected a whole number >= 1")
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(n)
    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    if load_torch:
        import torch  # noqa: F401  (imported for _set_torch, after the environment is set)
    _limit_native_pools(n)
    _set_torch(n)
    _set_numba(n)
    _note_polars(n)
    log.debug("using %d thread(s)", n)
    return n


def _limit_native_pools(n: int) -> None:
    """BLAS and OpenMP runtimes already loaded, through threadpoolctl when it is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n)


def _set_torch(n: int) -> None:
    """torch's intra-op pool, and its inter-op pool while that has not started; only if torch is imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != n:
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # the pool has started (or was set once): it keeps its size
            log.debug("torch inter-op pool already started with %d thread(s)", torch.get_num_interop_threads())


def _set_numba(n: int) -> None:
    """numba's threads for the calling thread, at most the pool size fixed at import; only if numba is imported."""
    if "numba" not in sys.modules:
        return
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def _note_polars(n: int) -> None:
    polars = sys.modules.get("polars")
    if polars is not None and polars.thread_pool_size() != n:
        log.debug("polars was imported before --threads was applied: it keeps %d thread(s)",
                  polars.thread_pool_size())
