#!/bin/sh
# Install Debian packages the project needs from the system (never a download of its own), when they are
# missing: as root (as CI runs) or with passwordless sudo. Used by `make fonts` and `make browser`.
#   tools/apt_install.sh TARGET "CHECK" "WITHOUT" STRICT PACKAGE...
# TARGET: the make target (for its messages); CHECK: a shell test that passes when nothing is missing;
# WITHOUT: what happens without the packages; STRICT=1: under CI, a failed apt-get fails the target.
target=$1 check=$2 without=$3 strict=$4
shift 4
if sh -c "$check" >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "make $target: $* missing and no apt-get: $without"; exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "make $target: run 'sudo apt-get install -y $*' ($without otherwise)"; exit 0
fi
echo "make $target: installing $* with apt-get"
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null; then
  exit 0
fi
echo "make $target: apt-get failed: $without"
if [ "$strict" = 1 ] && [ -n "${CI:-}" ]; then exit 1; fi
exit 0
