"""A read-only OCI distribution registry (pull only) over an image layout, at /v2/."""
