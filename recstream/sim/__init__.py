"""Closed-loop simulation: synthetic users with hidden, drifting tastes browse, receive the
worker's lists over Kafka and react to them; per round CTR, conversion, coverage and diversity
beside a popularity baseline.

Modules: ``scenarios`` (the five domains as numbers), ``catalogue`` and ``world`` (pure numpy),
``metrics``, ``bus`` (Kafka) and ``loop`` (the rounds, with the ``BetweenRounds`` seam). Nothing
is imported here, so that the CLI can list the scenarios without loading numpy.
"""
