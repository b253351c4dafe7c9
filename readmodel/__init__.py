"""The read model: what the projector writes to PostgreSQL and the API reads from it.

Table definitions, the mapping between the domain's job state and rows, the announcement of
terminal jobs, the event archive and its queries, the checkpoint and a job's timeline. `api`
and `projector` meet here and nowhere else. Imports nothing of ours but `domain` and `eventlog`.
"""
