"""queue.raw: the accepted bytes travel in the queue row

The receive stage commits the raw message with its queue row (one group-committed transaction, one fsync) instead
of fsyncing a blob file and its directory per message before 250; the worker writes the blob and clears `raw`.

Revision ID: 0008
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.drop_column("raw")
