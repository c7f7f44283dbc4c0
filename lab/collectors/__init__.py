"""The lab's runtime of what the toolkit deployed: Alloy and the OpenTelemetry Collector as real Prometheus agents."""
