"""console_sessions: server-side sessions of the web console (hashed id, the credential it stands for, idle time)

Revision ID: 1301
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "1301"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_console_sessions_last_seen", "console_sessions", ["last_seen_us"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_last_seen", table_name="console_sessions")
    op.drop_table("console_sessions")
