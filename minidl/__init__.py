"""minidl: deep learning from scratch in NumPy, with Numba kernels for the hot loops.

Subpackages and modules:

* :mod:`minidl.layers` -- layers, each with ``forward`` and ``backward`` side by side;
* :mod:`minidl.kernels` -- Numba kernels, with NumPy twins in :mod:`minidl.reference`;
* :mod:`minidl.losses` -- losses and penalties returning values and analytic gradients;
* :mod:`minidl.optim` -- SGD and Adam; :mod:`minidl.init` -- initialisers;
* :mod:`minidl.gradcheck` -- central-difference gradient checks;
* :mod:`minidl.testing` -- the gradient-check kit for your own layers, built on them.
"""

import os

# Two thread pools share the cores: OpenBLAS's (matrix products) and OpenMP's (the Numba kernels).
# Threads of either pool that busy-wait after their work take the cores from the other pool's next
# piece of work. OpenMP's threads sleep at once (passive): with them spinning, a training step of the
# study's network took 150 ms instead of 118 ms on 2 cores. OpenBLAS's threads spin for 2^20 cycles
# (about 0.4 ms; its default is 2^28), which keeps them awake across the short gaps between the small
# products of a step (a Frey VAE epoch: 40 ms, against 46 ms with a 2^4 spin and 36 ms with 2^24, at
# which the conv step slows down by a fifth). Both are read when the libraries load, so they only take
# effect when minidl is imported first; an explicit setting by the user wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse instead of returning it to the system.

    By default glibc hands memory at the top of its heap back to the system as soon as a few tens of
    megabytes there are free, and the next array of that size is then mapped afresh, paying a page
    fault on the first write to every page. A training step frees and reallocates its activations
    every step: with the default a step of the study's network took about 1,000 page faults and 3-7%
    more time. A high trim threshold keeps that memory (and glibc then needs the mmap threshold set
    too; 32 MiB is its largest and its dynamic default's ceiling). The process keeps its peak memory
    instead of shrinking after it; the peak itself is unchanged. Skipped off glibc, and when the user
    tunes the allocator with any MALLOC_* variable. Returns whether the setting was made.
    """
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: the mallopt parameter numbers below are glibc's
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20) and libc.mallopt(m_trim_threshold, 2**30))
    except (OSError, AttributeError):
        return False


_keep_freed_memory()

__version__ = "0.1.0"
