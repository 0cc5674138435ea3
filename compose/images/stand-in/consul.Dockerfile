# Stand-in for hashicorp/consul (built by compose/images/stand-ins): the same entry point
# conventions (`agent ...` gets -data-dir /consul/data -config-dir /consul/config; `consul ...`
# runs as given), data under /consul/data, the same ports.
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 8300 8301 8301/udp 8302 8302/udp 8500 8600 8600/udp
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["agent", "-dev", "-client", "0.0.0.0"]
