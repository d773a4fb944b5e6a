"""mailbox_integrations, bulk_jobs, bulk_job_messages: remediation in real mailboxes

Revision ID: 0801
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0801"
down_revision = "0008"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mailbox_integrations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_mailbox_integrations_account_domain", "mailbox_integrations", ["account_id", "domain"])
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("requested_by", sa.Text()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_message", sa.Text()),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("claimed_by", sa.Text()),
        sa.Column("claimed_us", sa.BigInteger()),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("started_us", sa.BigInteger()),
        sa.Column("completed_us", sa.BigInteger()),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_bulk_jobs_account", "bulk_jobs", ["account_id", "created_us"])
    op.create_index("ix_bulk_jobs_status", "bulk_jobs", ["status"])
    op.create_table(
        "bulk_job_messages",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("bulk_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("message_pk", PK, sa.ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome_json", sa.Text()),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ux_bulk_job_messages", "bulk_job_messages", ["job_id", "message_pk"], unique=True)
    op.create_index("ix_bulk_job_messages_status", "bulk_job_messages", ["job_id", "status", "id"])


def downgrade() -> None:
    op.drop_table("bulk_job_messages")
    op.drop_table("bulk_jobs")
    op.drop_table("mailbox_integrations")
