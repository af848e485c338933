"""Hypothesis without its per-example deadline: a property test is about correctness, and a
2-core CI box that is also training or running Kafka can take longer than 200 ms for one
example without anything being wrong. Speed lives in `recstream bench`."""

import os

import pytest
from hypothesis import settings

settings.register_profile("recstream", deadline=None)
settings.load_profile("recstream")


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never read the machine's configuration: every RECSTREAM_* variable of the
    shell (a developer's broker, CI's ports) is removed; a test sets what it needs."""
    for name in [n for n in os.environ if n.startswith("RECSTREAM_")]:
        monkeypatch.delenv(name)
