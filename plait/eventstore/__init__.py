"""Append-only event store (SQLAlchemy; SQLite by default, PostgreSQL in production)."""
