"""The health gate: the Kubernetes API calls, the add-ons, and the gate that runs them."""

# wait's defaults, here so that the command line shows them without loading the Kubernetes client.
API_TIMEOUT = 1800.0  # seconds from start: PXE, install, reboot and kubeadm init all come first
NODES_TIMEOUT = 900.0  # seconds after the API answers
POLL = 5.0
