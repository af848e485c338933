"""Closed-loop simulation: synthetic users with hidden, drifting tastes browse, receive the
worker's lists over Kafka and react to them; per round CTR, conversion, coverage and diversity
of the served lists beside counterfactual arms judged with the same random numbers.

Modules: ``scenarios`` (the five domains as numbers), ``catalogue`` and ``world`` (pure numpy),
``metrics``, ``policies`` and ``arms`` (the counterfactual lists and every arm's tally),
``paired`` (paired differences and their intervals), ``report`` (several runs pooled), ``bus``
(Kafka) and ``loop`` (the rounds, with the ``BetweenRounds`` seam). Nothing is imported here,
so that the CLI can list the scenarios without loading numpy. See docs/simulator.md.
"""
