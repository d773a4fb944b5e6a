"""submissions: the columns `GET /submissions` filters and orders on, and the link between a user report and the
analyst's escalation

Revision ID: 1101
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "1101"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (
    ("kind", sa.String(8)),  # TEAM (an analyst's reclassification) or USER (an end user's report)
    ("status", sa.String(16)),
    ("customer_status", sa.String(16)),
    ("original_disposition", sa.String(16)),
    ("requested_disposition", sa.String(16)),
    ("outcome_disposition", sa.String(16)),
    ("outcome", sa.Text()),
    ("requested_by", sa.Text()),
    ("subject", sa.Text()),
    ("from_addr", sa.Text()),
    ("original_postfix_id", sa.String(16)),
    ("original_edf_hash", sa.String(64)),
    ("escalated_submission_id", sa.String(64)),  # the other side: USER -> its TEAM escalation, TEAM -> the USER one
    ("escalated_by", sa.Text()),
    ("escalated_at_us", sa.BigInteger()),
    ("escalated_as", sa.String(16)),
    ("search_text", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
        batch_op.create_index("ix_submissions_account_kind", ["account_id", "kind", "requested_us"], unique=False)
        batch_op.create_index("ix_submissions_message", ["message_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_message")
        batch_op.drop_index("ix_submissions_account_kind")
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
