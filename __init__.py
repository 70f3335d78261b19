"""meseta: a Mesos-compatible cluster resource manager on a Raft-replicated event log."""

__version__ = "0.1.0"
