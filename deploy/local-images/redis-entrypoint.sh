#!/bin/sh
# The part of the official redis image's entrypoint that FluxCode's compose files rely on:
# options alone are given to redis-server, which runs as the redis user and owns /data.
set -eu

case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
	chown -R redis:redis .
	exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
