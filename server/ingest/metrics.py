"""Prometheus metrics of ingest, on a registry passed in (tests create many services per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter("motcua_ingest_messages_total", "Messages received, by topic kind",
                                ["kind"], registry=registry)
        self.fates = Counter("motcua_ingest_fates_total", "Committed fates of messages", ["fate"], registry=registry)
        self.quarantined = Counter("motcua_ingest_quarantined_total", "Messages quarantined, by reason",
                                   ["reason"], registry=registry)
        self.ack_latency = Histogram("motcua_ingest_ack_latency_seconds",
                                     "From receipt to end-to-end ack published (after the commit)",
                                     buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("motcua_ingest_batch_size", "Messages per committed batch",
                                    buckets=(1, 5, 20, 50, 100, 250, 500, 1000, 2500), registry=registry)
        self.queue_depth = Gauge("motcua_ingest_queue_depth", "Messages received, not yet committed",
                                 registry=registry)
        self.db_retries = Counter("motcua_ingest_db_retries_total", "Batches retried after a database error",
                                  registry=registry)
        self.dropped_heartbeats = Counter("motcua_ingest_heartbeats_shed_total",
                                          "Heartbeats shed because the queue was full (events are never shed)",
                                          registry=registry)
        self.configs_published = Counter("motcua_configs_published_total", "Retained device configs published",
                                         registry=registry)
