"""The only layer with side effects on repositories: git, worktrees, task runners, orchestration."""
