"""Processes serve runs and owns: dnsmasq (under its guardian), HTTP workers, built-in TFTP, the output-dir claim."""
