#!/bin/sh
# Serves "<colour> <hostname>" on :80 (PORT overrides) until stopped; exits on SIGTERM.
# FAIL_PERCENT=N (0-100, default 0): that share of requests to / is answered 500 (a CGI draws
# each request); /health always answers 200, so a bad release stays in rotation.
body="${COLOR:-none} $(hostname)"
fail="${FAIL_PERCENT:-0}"
case "$fail" in
  '' | *[!0-9]*) echo "app: FAIL_PERCENT=$fail is not a whole percentage" >&2; exit 64 ;;
esac
if [ "$fail" -gt 100 ]; then
  echo "app: FAIL_PERCENT=$fail is over 100" >&2
  exit 64
fi
mkdir -p /www/cgi-bin
echo ok > /www/health
echo "$body" > /www/body
if [ "$fail" -eq 0 ]; then
  cp /www/body /www/index.html
else
  # Without index.html, busybox httpd answers / from cgi-bin/index.cgi. A CGI output that
  # starts with a status line is sent as is; otherwise httpd prefixes "200 OK".
  rm -f /www/index.html
  cat > /www/cgi-bin/index.cgi <<CGI
#!/bin/sh
n=\$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
if [ \$((n % 100)) -lt $fail ]; then
  printf 'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nFAIL_PERCENT=$fail: '
else
  printf 'Content-Type: text/plain\r\n\r\n'
fi
cat /www/body
CGI
  chmod +x /www/cgi-bin/index.cgi
fi
trap 'exit 0' TERM INT
httpd -f -p "${PORT:-80}" -h /www &
wait $!
