"""The event log on Redis Streams: key names, the Lua scripts, appending and reading entries,
and the consumer-group machinery (read, claim, heartbeat, hand-back, dead letters).

Imports nothing of ours but `domain`.
"""
