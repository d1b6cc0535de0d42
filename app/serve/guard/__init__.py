"""What keeps abuse cheap: connection limits, the throttle, and the counters /metrics shows."""
