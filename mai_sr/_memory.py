"""Keep freed memory in the process (glibc), so image pipelines do not pay page faults.

Every image step allocates arrays of a few megabytes (decoded images, filter outputs, model
outputs). glibc's malloc serves blocks that large with a fresh ``mmap`` and returns freed
space at the top of the heap to the kernel, so each new array is zero-filled page by page
on first touch; on a loaded virtual machine that made SSIM 4-6x slower than its arithmetic.
Raising the mmap and trim thresholds lets freed blocks be reused instead. The price is that
up to :data:`TRIM_THRESHOLD` bytes of freed memory stay with the process until it exits,
which suits short commands. Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import platform
import sys

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 << 20

_done = False


def reuse_freed_memory() -> bool:
    """Set glibc's mmap/trim thresholds once per process; True when they are in effect."""
    global _done
    if not _done and sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(None)
            _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                         and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):
            _done = False
    return _done
