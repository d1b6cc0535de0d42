"""The health gate: the Kubernetes API calls, the add-ons, and the gate that runs them."""
