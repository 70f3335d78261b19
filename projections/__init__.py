"""Read models folded from the same log as the master."""
