"""The lab's metrics plane: real Prometheus processes, a Mimir front and per-node endpoints."""
