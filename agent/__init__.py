"""The agent: runs tasks and reports their status to the master over HTTP."""
