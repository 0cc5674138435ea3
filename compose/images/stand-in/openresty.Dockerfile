# Stand-in for openresty/openresty (built by compose/images/stand-ins): Debian's nginx with
# libnginx-mod-http-lua, lua-resty-core and lua-cjson, laid out like the official image where it
# matters: `openresty` and `nginx` on PATH (/usr/local/openresty/bin, .../nginx/sbin), the default
# config at /usr/local/openresty/nginx/conf/nginx.conf (= /etc/nginx/nginx.conf) including
# /etc/nginx/conf.d/*.conf, `resty.core` and `cjson` on the default Lua path, SIGQUIT to stop.
# One difference: the Lua module is dynamic here, loaded by `include
# /etc/nginx/modules-enabled/*.conf;` in the main context; a config of your own should carry that
# line too (on the official image the glob matches nothing and changes nothing).
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/openresty/nginx/sbin:/usr/local/openresty/bin
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["/usr/local/openresty/bin/openresty", "-g", "daemon off;"]
