"""The allocator settings every command applies at start."""

from __future__ import annotations

import ctypes
import sys

import pytest

from recstream.memory import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_glibc_takes_the_thresholds_and_large_blocks_still_work() -> None:
    assert keep_freed_memory()
    assert keep_freed_memory()  # idempotent
    block = ctypes.create_string_buffer(64 * 1024 * 1024)  # above the old mmap threshold
    block[-1] = b"x"
    assert block[-1] == b"x"
