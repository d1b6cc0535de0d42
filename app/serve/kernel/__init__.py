"""What serve asks the kernel directly: the neighbour table (rtnetlink) and directory change notification (inotify)."""
