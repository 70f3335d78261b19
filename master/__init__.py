"""The write model: the master's state as a pure fold over the replicated log."""
