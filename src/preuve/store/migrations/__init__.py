"""Alembic environment of the results store; run through :meth:`preuve.store.db.Store.upgrade`."""
