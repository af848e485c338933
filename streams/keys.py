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

    def trending(self, epoch: int, category: str | None = None) -> str:
        base = f"{self.prefix}:trending:{epoch}"
        return base if category is None else f"{base}:{category}"

    def catalog(self) -> str:
        return f"{self.prefix}:catalog"

    def catalog_version(self) -> str:
        return f"{self.prefix}:catalog:version"

    def served(self, user_id: str) -> str:
        """The user's last few served lists, for attribution (kept apart from the state)."""
        return f"{self.prefix}:user:{user_id}:served"

    def metrics(self, version: str) -> str:
        """Cluster-wide counters of one model version (hash)."""
        return f"{self.prefix}:metrics:{version}"

    def metrics_items(self, version: str) -> str:
        """Distinct items shown by one model version (HyperLogLog)."""
        return f"{self.prefix}:metrics:{version}:items"

    def metrics_versions(self) -> str:
        """Versions that have counters (set)."""
        return f"{self.prefix}:metrics:versions"

    def workers(self) -> str:
        """Worker id → ``{"version", "since_ms", "seen_ms"}`` (hash of JSON)."""
        return f"{self.prefix}:workers"
