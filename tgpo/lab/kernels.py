"""The lab's pinned numerics: every process that builds, trains or evaluates a lab model runs torch's, MKL's and
oneDNN's float32 kernels at one vector instruction set, AVX2, with one thread.

Why: float32 kernels round differently under AVX2 and AVX-512, and an RL run amplifies a last-bit difference into
different samples, so without the pin the same code and library versions gave other lab numbers on another x86-64
machine (GRPO's in-distribution score moved by a point). AVX2 is the common instruction set of current x86-64
servers; on a machine with AVX-512 it costs some speed, on an AVX2 machine nothing. One thread because tiny models
are ~20x slower with two threads per process on 2 cores. Each variable is read when its library first runs a kernel,
so :func:`pin` must run before any tensor arithmetic in the process.
"""

from __future__ import annotations

import os
import sys
import warnings

#: The variables and their values (torch's dispatch, MKL's conditional numerical reproducibility, oneDNN).
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def pin() -> dict[str, str]:
    """Set :data:`KERNEL_ENV` in this process where the user has not set a variable; returns the values in force.
    Warns (once) when torch is already imported, as its kernel choice may then be made already."""
    for name, value in KERNEL_ENV.items():
        os.environ.setdefault(name, value)
    if "torch" in sys.modules:
        warnings.warn("tgpo.lab.kernels.pin() after torch was imported: the lab's AVX2 kernel pin may not apply",
                      RuntimeWarning, stacklevel=2)
    return {name: os.environ[name] for name in KERNEL_ENV}
