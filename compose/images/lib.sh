# Shared by compose/images/build and compose/images/stand-ins (sourced, not run).

# Loads the image names from compose/.env unless the environment already set them.
load_image_names() {
  local line key
  while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    key=${line%%=*}
    [ -n "${!key:-}" ] || export "$line"
  done <"$(dirname "${BASH_SOURCE[0]}")/../.env"
}

# elf_libs BINARY: the shared libraries BINARY loads (the loader included), one path a line.
elf_libs() {
  ldd "$1" | awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }'
}

# stage_elf BINARY ROOT [DEST]: copies BINARY into ROOT (at DEST, default its own path) with
# every shared library it loads, at the paths the loader expects, so it runs FROM scratch.
stage_elf() {
  local bin=$1 root=$2 dest=${3:-$1} lib
  install -D -m 0755 "$bin" "$root$dest"
  for lib in $(elf_libs "$bin"); do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

# base_files ROOT: the few files a scratch image needs to resolve names and users.
base_files() {
  local root=$1
  mkdir -p "$root/etc" "$root/tmp" "$root/run"
  chmod 1777 "$root/tmp"
  cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nginx:x:101:101:nginx:/nonexistent:/bin/false
consul:x:100:1000:consul:/consul:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
  cat >"$root/etc/group" <<'GROUP'
root:x:0:
nginx:x:101:
consul:x:1000:
nogroup:x:65534:
GROUP
  echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
}

# busybox_tools ROOT: a shell and the usual tools (Debian's busybox-static), as the official
# images have, for health checks and `docker exec`.
busybox_tools() {
  install -D -m 0755 /bin/busybox "$1/bin/busybox"
}

# docker_build TAG CONTEXT DOCKERFILE [ARGS...]
docker_build() {
  local tag=$1 ctx=$2 file=$3
  shift 3
  local log
  log=$(mktemp)
  # The legacy builder's deprecation notice goes to stderr: show it only when the build fails.
  if ! docker build -q -t "$tag" -f "$file" "$@" "$ctx" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  echo "built $tag"
}
