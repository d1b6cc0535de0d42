"""Sending files: the Range/conditional file sender, bulk transfer threads, and the /assets rules."""
