# registrator: the binary and the shared libraries it loads, FROM scratch (nothing is pulled).
# The context is staged by compose/images/build.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
ENTRYPOINT ["/usr/local/bin/registrator"]
CMD ["--help"]
