"""Hypothesis without its per-example deadline: a property test is about correctness, and a
2-core CI box that is also training or running Kafka can take longer than 200 ms for one
example without anything being wrong. Speed lives in `recstream bench`."""

from hypothesis import settings

settings.register_profile("recstream", deadline=None)
settings.load_profile("recstream")
