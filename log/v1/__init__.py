"""Version 1 of the log entry schema."""
