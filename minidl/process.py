"""Process tuning for training on a small CPU: :func:`tune_process`, an explicit call, never made on import.

Two thread pools share the cores: OpenBLAS's (the matrix products) and OpenMP's (the Numba kernels).
Threads of either pool that busy-wait after their work take the cores from the other pool's next piece
of work, and glibc's allocator returns a step's freed activations to the system only to map them again
in the next step. Importing minidl changes none of this; a script, a benchmark or a test session that
wants the tuned process calls :func:`tune_process` before it imports NumPy (``python -m experiments``,
the benchmarks and the test suite do). docs/kernels.md gives the figures.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# OpenMP's threads sleep at once; OpenBLAS's spin 2^20 cycles (about 0.4 ms, its default is 2^28).
THREAD_SETTINGS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "20"}


@dataclass(frozen=True)
class Tuning:
    """What :func:`tune_process` changed: ``threads`` names the environment variables it set (an explicit
    setting of the user's is kept and not listed), ``threads_in_effect`` is False when NumPy was already
    imported (OpenBLAS read its setting then), ``allocator`` says whether glibc's allocator was tuned."""

    threads: tuple[str, ...]
    threads_in_effect: bool
    allocator: bool


def tune_process() -> Tuning:
    """Tune this process for minidl's training steps; call it first thing, before NumPy is imported.

    * ``OMP_WAIT_POLICY=PASSIVE`` and ``OPENBLAS_THREAD_TIMEOUT=20``: on a 2-core AMD EPYC a training
      step of the study's network took 150 ms with OpenMP's threads spinning against 118 ms with them
      asleep, and with OpenBLAS's default spin the Winograd tile transforms took 1.7-1.9x as long. Both
      are read when the libraries load, so they take effect only when NumPy is imported afterwards;
      a value the user set in the environment wins.
    * glibc's allocator keeps freed memory for reuse (trim threshold 1 GiB, mmap threshold 32 MiB):
      ``benchmarks/page_faults.py`` counts the page faults per step it saves. The process then keeps
      its peak memory instead of shrinking after it. Skipped off glibc and when any ``MALLOC_*``
      variable is set (the user tunes the allocator).

    Examples:
        >>> import minidl
        >>> minidl.tune_process().threads_in_effect   # False: this process imported NumPy already
        False
    """
    in_effect = "numpy" not in sys.modules
    set_here = tuple(name for name in THREAD_SETTINGS if name not in os.environ)  # the user's own settings win
    os.environ.update({name: THREAD_SETTINGS[name] for name in set_here})
    return Tuning(threads=set_here, threads_in_effect=in_effect, allocator=_keep_freed_memory())


def _keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds so that freed arrays stay in the heap; True when done."""
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # glibc only: the mallopt parameter numbers below are glibc's
            return False
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20) and libc.mallopt(m_trim_threshold, 2**30))
    except (OSError, AttributeError):
        return False
