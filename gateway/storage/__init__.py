"""Storage: the sinks that drain the outbox (SQLite readings store, InfluxDB), the storage service, export."""
