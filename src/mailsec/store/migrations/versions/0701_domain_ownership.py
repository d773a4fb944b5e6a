"""domains.status, verify_token, checked_us and the domain_audit table

A domain claimed through the API stays PENDING until its account proves control with a DNS TXT record; every
claim, verification, change and release is recorded in `domain_audit`.

Revision ID: 0701
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0701"
down_revision = "0008"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="ACTIVE"))
        batch_op.add_column(sa.Column("verify_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("checked_us", sa.BigInteger(), nullable=True))
    op.create_table(
        "domain_audit",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_domain_audit_domain", "domain_audit", ["domain", "at_us"])
    op.create_index("ix_domain_audit_account", "domain_audit", ["account_id", "at_us"])


def downgrade() -> None:
    op.drop_index("ix_domain_audit_account", table_name="domain_audit")
    op.drop_index("ix_domain_audit_domain", table_name="domain_audit")
    op.drop_table("domain_audit")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_column("checked_us")
        batch_op.drop_column("verify_token")
        batch_op.drop_column("status")
