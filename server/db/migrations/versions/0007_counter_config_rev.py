"""counters.config_rev: who serves at a counter changes the counter's row, not its devices' rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A device's config revision becomes devices.config_rev + counters.config_rev; starting at 0 keeps
    # every published revision as it was.
    with op.batch_alter_table('counters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('config_rev', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    # Fold the counter's share back into its devices, so none of them is told an old config is new.
    op.execute("UPDATE devices SET config_rev = config_rev + (SELECT config_rev FROM counters "
               "WHERE counters.id = devices.counter_id) WHERE counter_id IS NOT NULL")
    with op.batch_alter_table('counters', schema=None) as batch_op:
        batch_op.drop_column('config_rev')
