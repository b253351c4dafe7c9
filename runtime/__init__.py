"""What every role's process is built from: its settings' common part, logging, signal
handling, the metrics endpoint, and tracing (W3C trace context and optional OpenTelemetry spans).

Imports nothing of ours but `eventlog` (for the key names the settings derive).
"""
