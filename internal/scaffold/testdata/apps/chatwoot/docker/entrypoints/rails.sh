#!/bin/sh
set -x
rm -rf /app/tmp/pids/server.pid
exec "$@"
