"""Powering nodes: one small module per way (Wake-on-LAN today)."""
