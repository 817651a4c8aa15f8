"""Alembic's environment: the database DATABASE_URL names, the models' metadata."""

import os
from logging.config import fileConfig

from alembic import context
from board.models import Base
from sqlalchemy import create_engine

if context.config.config_file_name:
    fileConfig(context.config.config_file_name)

engine = create_engine(os.environ["DATABASE_URL"])
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
