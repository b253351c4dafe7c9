"""The HTTP API: accepts jobs onto the event log and reads them back from the projection."""
