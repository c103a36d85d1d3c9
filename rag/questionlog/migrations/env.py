"""Alembic's environment for the question log: always online, on the connection the application
hands over (rag.questionlog.store.migrate), never from an alembic.ini."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
