"""The notifier: tells clients of their jobs by webhook, from the log, signed and retried."""
