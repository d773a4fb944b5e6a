"""settings_ids: one sequence for the ids of every settings entry and protected domain

SQLite hands out max(rowid) + 1, so the id of a deleted newest entry came back for the next one, and the domains
table counted on its own. Ids now come from this AUTOINCREMENT table (a sequence on PostgreSQL), seeded past every
id already handed out.

Revision ID: 0101
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0101"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "settings_ids",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    bind = op.get_bind()
    highest = max(
        bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM policies")).scalar_one(),
        bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM domains")).scalar_one(),
    )
    if not highest:
        return
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('settings_ids', 'id'), :n)"), {"n": highest})
    else:
        op.bulk_insert(table, [{"id": highest}])  # AUTOINCREMENT remembers it in sqlite_sequence
        bind.execute(sa.text("DELETE FROM settings_ids"))


def downgrade() -> None:
    op.drop_table("settings_ids")
