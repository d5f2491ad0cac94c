"""plait: run a plan of coding tasks in parallel git worktrees; land only what passes the tests."""

__version__ = "0.1.0"
