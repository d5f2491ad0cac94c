"""Starlette app: command POSTs, queries, server-sent events and the dashboard."""
