#!/bin/sh
# As the official image does: reachable from outside the container (it is the container's only
# network), and running as the redis user.
set -eu
if [ "${1:-}" = "redis-server" ]; then
  shift
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
