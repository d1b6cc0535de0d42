"""Boot routes: labels, the Matchbox data store, the boot policy, rendering, and the handlers."""
