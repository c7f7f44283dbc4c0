"""The rehearsal cluster: a Kubernetes API, Talos nodes and a metrics plane on one machine."""
