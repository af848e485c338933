"""What this CPU can do, read without importing torch (the ONNX serving path has none)."""

from __future__ import annotations

import functools
from pathlib import Path

# Instruction sets that multiply bfloat16 natively (what oneDNN uses for bfloat16 products).
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively; False where that cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return not BFLOAT16_FLAGS.isdisjoint(flags.split())
