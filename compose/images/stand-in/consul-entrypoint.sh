#!/bin/sh
# The official image's entry-point conventions, minus the user switch.
set -e
case "$1" in
  -*) set -- consul agent -data-dir=/consul/data -config-dir=/consul/config "$@" ;;
  agent) shift; set -- consul agent -data-dir=/consul/data -config-dir=/consul/config "$@" ;;
esac
exec "$@"
