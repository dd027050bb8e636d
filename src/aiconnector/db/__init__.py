"""Persistence: async engine, SQLAlchemy models and Alembic migrations."""
