"""bootstrap-node: PXE-boot a rack of bare-metal machines into a Kubernetes cluster on Flatcar."""

__version__ = "0.1.0"
