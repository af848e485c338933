"""What this CPU can do, read without importing torch (the ONNX serving path has none)."""

from __future__ import annotations

import functools
from pathlib import Path

# Instruction sets that multiply bfloat16 natively (what oneDNN uses for bfloat16 products).
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Integer dot-product instructions (x86 VNNI, AMX; Arm's dotprod). Without them ONNX Runtime's
# x86 uint8 x int8 products add pairs in 16 bits, which can saturate (its quantisation docs).
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively; False where that cannot be read."""
    return not BFLOAT16_FLAGS.isdisjoint(_flags())


@functools.cache
def native_int8() -> bool:
    """Whether this CPU has integer dot-product instructions; False where that cannot be
    read."""
    return not INT8_FLAGS.isdisjoint(_flags())


def _flags() -> set[str]:
    """The first processor's feature flags (x86 ``flags``, Arm ``Features``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    lines = (line for line in text.splitlines() if line.startswith(("flags", "Features")))
    return set(next(lines, "").partition(":")[2].split())
