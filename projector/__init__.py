"""The projector: folds the event log into PostgreSQL job rows."""
