# Stand-in for the official nginx image (built by compose/images/stand-ins): nginx in the
# foreground, logs to stdout/stderr, /etc/nginx/conf.d included, SIGQUIT to stop gracefully.
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
