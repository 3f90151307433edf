# Stand-in for redis:7-alpine from Debian's redis-server (deploy/local-images.sh): a command
# line that starts with "redis-server", run as the redis user in /data, and redis-cli (which
# reads REDISCLI_AUTH) for the health check.
ARG BASE
FROM ${BASE}
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server"]
