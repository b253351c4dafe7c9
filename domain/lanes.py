"""Lanes: how a job was asked for, which decides how soon it is served next to others.

A job submitted on its own (a client waiting for it, typically) is `interactive`; a job of a
batch is `bulk`. Each tenant's jobs of each kind queue apart from everybody else's, so that one
tenant's backlog never holds up another tenant's jobs, and a tenant's own bulk work never holds
up its interactive work (the log's lanes, eventlog.lanes, and the readers' scheduling).
"""

from __future__ import annotations

INTERACTIVE = "interactive"
BULK = "bulk"
KINDS = (INTERACTIVE, BULK)
