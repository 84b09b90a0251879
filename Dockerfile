# sluice in front of an app, as the only programs of the image: no shell, no init, nothing
# beyond the two binaries and the libraries they load. Build dist/rootfs first:
#   ./compile.sh image && docker build -t sluice .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 --stop-timeout 30 sluice
# Your own app: copy its single binary beside sluice and change CMD, e.g.
#   FROM sluice
#   COPY myapp /myapp
#   CMD ["--", "/myapp"]
FROM scratch
COPY dist/rootfs/ /
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080
# sluice is PID 1: TERM is the ordered stop, INT too, QUIT a fast stop, HUP a reload, and it
# reaps orphaned processes. Docker's default stop timeout (10 s) is shorter than sluice's
# default stop budget (27.5 s): pass `docker run --stop-timeout` what `sluice check` prints.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["/sluice", "healthcheck"]
ENTRYPOINT ["/sluice"]
CMD ["--", "/app"]
