"""The web console's accounts and sessions (issue 19)."""

from __future__ import annotations

import sqlalchemy as sa

from workorder_pipeline.storage.schema_base import UtcDateTime, metadata

#: Officers' accounts of the web console (migration 0019): the 执法证号 signs in; the
#: password is kept as an Argon2id hash only.
officer = sa.Table(
    "officer",
    metadata,
    sa.Column("certificate_no", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("unit", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_officer_unit", "unit"),
)

#: Signed-in browsers: the SHA-256 of the cookie's random token, never the token itself.
console_session = sa.Table(
    "console_session",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("certificate_no", sa.String(64), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Index("ix_console_session_officer", "certificate_no"),
)
