"""Read models folded from events: run status and audit history."""
