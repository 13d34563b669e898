"""Alembic revisions of the store, ``NNNN_<slug>.py`` with revision id ``"NNNN"`` (a package so they ship)."""
