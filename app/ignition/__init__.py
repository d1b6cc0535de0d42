"""Butane → Ignition: the translator and Ignition's own rules. Used by render (our templates) and
by serve (Butane templates in a Matchbox data dir); it imports nothing else of the app."""
