"""The bottom of the house: facts of the public contract (docs/contract.md) that every layer
shares and that import nothing of recstream's."""

from __future__ import annotations

from typing import Literal, get_args

EventType = Literal["click", "purchase", "view", "add_to_cart", "like", "skip"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

# How much each interaction type says about a user's taste; `skip` is negative feedback
# and contributes nothing to the sequence the model sees.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "click": 1.0,
    "purchase": 3.0,
    "view": 0.5,
    "add_to_cart": 2.0,
    "like": 1.5,
    "skip": 0.0,
}
