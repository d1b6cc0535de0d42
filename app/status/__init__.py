"""Read models of a running (or stopped) serve: the status view, its page and texts, discovered machines, serve.json."""
