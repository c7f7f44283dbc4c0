"""The lab's Kubernetes API server: discovery, CRUD, patches, selectors, validation."""
