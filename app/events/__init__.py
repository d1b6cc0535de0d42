"""Events are the single record of progress: the status page, `status`, `discover`, the boot policy
(reinstall guard, install windows), `/metrics` and `wait` all read them. `model.py`: what an event and
a node state are; `log.py`: the file they live in (one process's, or shared by several workers);
`follower.py`: reading on in it from where a reader stopped; `alerts.py`: the alerts it keeps;
`oneshot.py`: one line appended, or all read, by a process that is not serve."""

from app.events.follower import FOLLOW_BLOCK, Follower
from app.events.log import (
    MAX_BYTES,
    MAX_DISCOVERED,
    EventLog,
    SharedEventLog,
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
    EventKind,
    NodeState,
    Phase,
    Window,
    epoch,
    now_iso,
)
from app.events.oneshot import append_event, read_events

__all__ = ["ALERT", "ALERT_SUMMARY", "CALLBACK_PHASES", "CONTESTED", "EXTERNAL_SOURCES", "FINAL_CALLBACKS",
           "FINAL_CONFIG_SERVED", "FOLLOW_BLOCK", "INSTALL_CALLBACKS", "MAX_BYTES", "MAX_DISCOVERED", "NODE_STATE",
           "PHASES",
           "Event", "EventKind", "EventLog", "Follower", "SharedEventLog", "NodeState", "Phase", "Window",
           "append_event", "epoch", "now_iso", "read_events"]
