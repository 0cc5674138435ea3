# templater, on top of the nginx image the edge runs, so `nginx -t` checks a config with exactly
# the nginx that will load it: compose/images/build builds it twice, swarmgate/templater on
# $OPENRESTY_IMAGE (Lua data plane) and swarmgate/templater-nginx on $NGINX_IMAGE (reload). The
# binary brings its own loader and libraries under /opt/swarmgate (it does not depend on the base
# image's C library); /usr/local/bin/templater starts it. The context is staged by
# compose/images/build.
ARG NGINX_IMAGE=nginx:1.28
FROM ${NGINX_IMAGE}
COPY rootfs/ /
ENTRYPOINT ["/usr/local/bin/templater"]
CMD ["run"]
