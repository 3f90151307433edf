# Stand-in for postgres:15-alpine from Debian's postgresql-15 (deploy/local-images.sh): the
# same PGDATA, port, POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB on first start, a command
# line that starts with "postgres", and pg_isready for the health check.
ARG BASE
FROM ${BASE}
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p "$PGDATA" /var/run/postgresql \
 && chown postgres:postgres "$PGDATA" /var/run/postgresql \
 && chmod 700 "$PGDATA"
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
