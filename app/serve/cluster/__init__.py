"""serve as one of several replicas: leader election through a Kubernetes Lease (docs/high-availability.md)."""
