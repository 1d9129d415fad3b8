"""Persistence of work orders (SQLAlchemy 2 Core, SQLite or PostgreSQL), behind a small repository."""
