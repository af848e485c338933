"""Redis key names, all under one prefix so several deployments can share a server.

Layout 3 (docs/contract.md): keys carry Redis Cluster hash tags (since layout 2), and a user
has one key (since layout 3: ``uservalue.py``). A user's key and event ids share the tag
``{<user_id>}``, so that one script call can write them on whichever node holds the user;
the keys every batch updates together (watermarks, counters, trending, metrics) share
the tag ``{<prefix>}``, so that one script call updates them atomically with the watermarks
that make them exactly-once. On a single Redis the tags change nothing.
"""

from __future__ import annotations

LAYOUT = "3"


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # Where the keys shared by all users start: the prefix, then the hash tag {<prefix>}.
        self.shared_head = f"{prefix}:{{{prefix}}}"

    def layout(self) -> str:
        """The key layout this deployment's Redis holds (string); absent before layout 2."""
        return f"{self.shared_head}:layout"

    def stats(self) -> str:
        return f"{self.shared_head}:stats"

    def user(self, user_id: str) -> str:
        """The user's state, last served lists and newest list, in one value (uservalue.py)."""
        return f"{self.prefix}:user:{{{user_id}}}"

    def event_id(self, user_id: str, event_id: str) -> str:
        """A producer's event id already applied to this user's state (beside the user's key,
        so that both change in one call)."""
        return f"{self.prefix}:eid:{{{user_id}}}:{event_id}"

    def watermark(self, topic: str, partition: int) -> str:
        """Highest offset of this partition whose effects on the shared keys are in Redis."""
        return f"{self.shared_head}:offset:{topic}:{partition}"

    def trending(self, epoch: int, category: str | None = None) -> str:
        base = f"{self.shared_head}:trending:{epoch}"
        return base if category is None else f"{base}:{category}"

    def catalog(self) -> str:
        return f"{self.shared_head}:catalog"

    def catalog_version(self) -> str:
        return f"{self.shared_head}:catalog:version"

    def metrics(self, version: str) -> str:
        """Cluster-wide counters of one model version (hash)."""
        return f"{self.shared_head}:metrics:{version}"

    def metrics_items(self, version: str) -> str:
        """Distinct items shown by one model version (HyperLogLog)."""
        return f"{self.shared_head}:metrics:{version}:items"

    def metrics_versions(self) -> str:
        """Versions that have counters (set)."""
        return f"{self.shared_head}:metrics:versions"

    def workers(self) -> str:
        """Worker id → ``{"version", "since_ms", "seen_ms"}`` (hash of JSON)."""
        return f"{self.shared_head}:workers"
