"""The dev stack: embedded servers, the roles as child processes, and what tests and benches
share to run beside each other (servers, databases, key clean-up, free ports)."""
