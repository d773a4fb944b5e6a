"""learning from reclassifications: message sketches and LSH bands, remembered campaigns and senders, content model
versions per account, and an index on messages (account_id, edf_hash)

Revision ID: 1201
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "1201"
down_revision = "0008"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_messages_account_edf", "messages", ["account_id", "edf_hash"])
    op.create_table(
        "learn_sketches",
        sa.Column("message_pk", PK, sa.ForeignKey("messages.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scanned_us", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "learn_bands",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("band", sa.BigInteger(), primary_key=True),
        sa.Column("message_pk", PK, sa.ForeignKey("messages.pk", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_learn_bands_message", "learn_bands", ["message_pk"])
    op.create_table(
        "learn_campaigns",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("submission_id", sa.String(64), nullable=False),
        sa.Column("message_pk", PK, sa.ForeignKey("messages.pk", ondelete="SET NULL")),
        sa.Column("requested", sa.String(16), nullable=False),
        sa.Column("original", sa.String(16)),
        sa.Column("edf_hash", sa.String(64), nullable=False),
        sa.Column("structure_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_learn_campaigns_edf", "learn_campaigns", ["account_id", "edf_hash"])
    op.create_index("ix_learn_campaigns_structure", "learn_campaigns", ["account_id", "structure_hash"])
    op.create_index("ix_learn_campaigns_message", "learn_campaigns", ["message_pk"])
    op.create_table(
        "learn_campaign_bands",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("band", sa.BigInteger(), primary_key=True),
        sa.Column("campaign_id", PK, sa.ForeignKey("learn_campaigns.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_learn_campaign_bands_campaign", "learn_campaign_bands", ["campaign_id"])
    op.create_table(
        "learn_senders",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(320), primary_key=True),
        sa.Column("requested", sa.String(16), nullable=False),
        sa.Column("original", sa.String(16)),
        sa.Column("submission_id", sa.String(64), nullable=False),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "learn_models",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("parent", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("submission_id", sa.String(64)),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quality_json", sa.Text(), nullable=False),
        sa.Column("delta", sa.LargeBinary()),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in ("learn_models", "learn_senders", "learn_campaign_bands", "learn_campaigns", "learn_bands",
                  "learn_sketches"):  # fmt: skip
        op.drop_table(table)
    op.drop_index("ix_messages_account_edf", table_name="messages")
