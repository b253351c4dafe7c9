"""Adapters shared by the roles: names, settings, Redis event log, PostgreSQL schema, servers."""
