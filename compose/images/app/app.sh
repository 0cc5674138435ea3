#!/bin/sh
# Serves "<colour> <hostname>" on :80 (PORT overrides) until stopped; exits on SIGTERM.
mkdir -p /www
echo "${COLOR:-none} $(hostname)" > /www/index.html
echo ok > /www/health
trap 'exit 0' TERM INT
httpd -f -p "${PORT:-80}" -h /www &
wait $!
