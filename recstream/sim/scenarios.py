"""The five simulated domains as plain numbers: catalogue shape, tastes, sessions, responses.

Each knob is read by :mod:`recstream.sim.world`; the values are chosen so that the domains
behave differently where it matters to a sequential recommender (see each entry's comment).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    prefix: str  # item ids are "<prefix><seed>-i<n>", so two seeds never share an id
    categories: tuple[str, ...]
    n_items: int
    unit: str  # what one item is called in titles
    zipf: float  # popularity ∝ rank^-zipf
    taste_alpha: float  # Dirichlet concentration of a user's category taste (small = focused)
    stay: float  # P(the next organic item stays in the current category)
    chain_len: int = 0  # items per series/track, consumed in order (0: no chains)
    chain_name: str = ""
    follow_chain: float = 0.0  # P(the next organic item is the next one of the chain)
    drift: float = 0.05  # share of a user's taste replaced per round
    season_amp: float = 0.0  # logit amplitude of seasonal category appeal
    season_period: float = 8.0  # rounds per seasonal cycle
    click_bias: float = -7.0  # logit of clicking an item of average appeal
    buy_bias: float = -3.0  # logit of buying an item of average appeal once clicked
    organic_buy: float = 0.05  # share of organic steps that are purchases
    repeat_buy: float = 0.0  # factor on buying an item bought before (0: never again)
    rewatch: float = 0.3  # factor on clicking an item the user already touched
    patience: float = 0.85  # P(reading on to the next position of a list)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SCENARIOS: dict[str, Scenario] = {
    # Many items, clicks common, purchases rare; durable goods are not bought twice.
    "ecommerce": Scenario(
        name="ecommerce",
        prefix="ec",
        categories=_words(
            """
            electronics phones computers home kitchen garden fashion shoes beauty health grocery
            toys baby sports outdoor books music automotive pets office
        """
        ),
        n_items=4000,
        unit="product",
        zipf=1.1,
        taste_alpha=0.6,
        stay=0.6,
        drift=0.05,
        click_bias=-7.5,
        buy_bias=-3.5,
        organic_buy=0.06,
        repeat_buy=0.05,
    ),
    # Short items, lots of clicks, purchases (subscriptions) very rare, tastes move fast.
    "content": Scenario(
        name="content",
        prefix="ct",
        categories=_words(
            """
            news politics tech science sports comedy gaming music food travel fashion diy
        """
        ),
        n_items=2500,
        unit="clip",
        zipf=0.9,
        taste_alpha=2.0,
        stay=0.5,
        drift=0.2,
        click_bias=-7.0,
        buy_bias=-5.5,
        organic_buy=0.005,
        rewatch=0.1,
        patience=0.9,
    ),
    # Courses come in tracks taken in order: course N+1 follows course N.
    "courses": Scenario(
        name="courses",
        prefix="cs",
        categories=_words(
            """
            programming data math design business languages music photography marketing finance
        """
        ),
        n_items=800,
        unit="course",
        zipf=1.0,
        taste_alpha=1.0,
        stay=0.7,
        chain_len=8,
        chain_name="track",
        follow_chain=0.8,
        drift=0.02,
        click_bias=-7.0,
        buy_bias=-2.0,
        organic_buy=0.25,
    ),
    # Series binged episode after episode, genre sessions.
    "media": Scenario(
        name="media",
        prefix="md",
        categories=_words(
            """
            drama comedy thriller crime documentary animation scifi fantasy romance horror
            reality kids history anime sport
        """
        ),
        n_items=2000,
        unit="episode",
        zipf=1.0,
        taste_alpha=1.2,
        stay=0.75,
        chain_len=10,
        chain_name="series",
        follow_chain=0.65,
        drift=0.05,
        click_bias=-7.0,
        buy_bias=-4.5,
        organic_buy=0.02,
        rewatch=0.1,
    ),
    # Destinations are a strong, seasonal taste; bookings are rare.
    "travel": Scenario(
        name="travel",
        prefix="tr",
        categories=_words(
            """
            paris rome barcelona lisbon london berlin prague vienna athens istanbul new-york
            tokyo bangkok bali sydney cape-town reykjavik alps lapland canary-islands crete
            dubai marrakesh cancun rio
        """
        ),
        n_items=1500,
        unit="stay",
        zipf=1.0,
        taste_alpha=0.6,
        stay=0.8,
        drift=0.03,
        season_amp=1.0,
        season_period=8.0,
        click_bias=-8.0,
        buy_bias=-4.5,
        organic_buy=0.02,
    ),
}

SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)
