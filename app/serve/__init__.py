"""`serve`: the HTTP server (Matchbox API, /assets, registry, status), dnsmasq and TFTP. See docs/architecture.md."""
