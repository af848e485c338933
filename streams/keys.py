"""Redis key names, all under one prefix so several deployments can share a server."""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def stats(self) -> str:
        return f"{self.prefix}:stats"

    def state(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:state"

    def recs(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:recs"

    def watermark(self, topic: str, partition: int) -> str:
        """Highest offset of this partition whose effects are already in Redis."""
        return f"{self.prefix}:offset:{topic}:{partition}"

    def event_id(self, event_id: str) -> str:
        return f"{self.prefix}:eid:{event_id}"

    def trending(self, category: str | None = None) -> str:
        return (
            f"{self.prefix}:trending" if category is None else f"{self.prefix}:trending:{category}"
        )

    def catalog(self) -> str:
        return f"{self.prefix}:catalog"

    def catalog_version(self) -> str:
        return f"{self.prefix}:catalog:version"
