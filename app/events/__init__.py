"""Events are the single record of progress: the status page, `status`, `discover`, the boot policy
(reinstall guard, install windows), `/metrics` and `wait` all read them. `model.py`: what an event and
a node state are; `log.py`: the file they live in."""

from app.events.log import (
    FOLLOW_BLOCK,
    MAX_BYTES,
    MAX_DISCOVERED,
    EventLog,
    append_event,
    read_events,
)
from app.events.model import (
    ALERT,
    ALERT_SUMMARY,
    CALLBACK_PHASES,
    CONTESTED,
    EXTERNAL_SOURCES,
    FINAL_CALLBACKS,
    FINAL_CONFIG_SERVED,
    INSTALL_CALLBACKS,
    NODE_STATE,
    PHASES,
    Event,
    NodeState,
    Phase,
    Window,
    epoch,
    now_iso,
)

__all__ = ["ALERT", "ALERT_SUMMARY", "CALLBACK_PHASES", "CONTESTED", "EXTERNAL_SOURCES", "FINAL_CALLBACKS",
           "FINAL_CONFIG_SERVED", "FOLLOW_BLOCK", "INSTALL_CALLBACKS", "MAX_BYTES", "MAX_DISCOVERED", "NODE_STATE",
           "PHASES",
           "Event", "EventLog", "NodeState", "Phase", "Window", "append_event", "epoch", "now_iso", "read_events"]
