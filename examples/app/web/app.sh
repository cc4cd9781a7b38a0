#!/bin/sh
# The web app: serves $GREETING over HTTP on $PORT (8080), /healthz for a
# readiness probe, and stops on SIGTERM (busybox httpd alone, as PID 1,
# would ignore it).
set -e
port=${PORT:-8080}
www=/tmp/www
mkdir -p "$www"
echo "$GREETING" >"$www/index.html"
echo ok >"$www/healthz"
httpd -f -p "$port" -h "$www" &
pid=$!
trap 'kill "$pid"; exit 0' TERM INT
echo "web: serving on :$port"
wait "$pid"
