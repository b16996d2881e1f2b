"""Give large buffers back to the system as soon as they are freed.

glibc serves an allocation above its mmap threshold (128 KiB) with mmap and unmaps it on free, but
it raises that threshold to the size of each large block freed (up to 32 MiB). After the relay's
first multi-MiB event, every later one comes from the heap, where freed memory stays: the
process's RSS then keeps the peak of every large event however briefly it was held, and the event
budget (relay/budget.py) would bound what is live but not what the pod is charged for. Setting the
threshold once fixes it at its default and turns the raising off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024


def return_large_buffers() -> bool:
    """Whether the threshold was fixed (glibc on Linux only: musl and others return memory anyway)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
