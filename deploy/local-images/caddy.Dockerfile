# Stand-in for caddy:2-alpine from Debian's caddy (deploy/local-images.sh): the same
# configuration path, data and config directories, default command, and wget for the
# health check.
ARG BASE
FROM ${BASE}
ENV XDG_CONFIG_HOME=/config \
    XDG_DATA_HOME=/data
RUN mkdir -p /config/caddy /data/caddy /etc/caddy /srv
VOLUME /config
VOLUME /data
WORKDIR /srv
EXPOSE 80 443 443/udp 2019
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
