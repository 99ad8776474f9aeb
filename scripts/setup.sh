#!/bin/sh
# Set up Scale Interceptor in ./.venv on a Debian machine with Python >= 3.11.
#   scripts/setup.sh          the server and its command-line tool
#   scripts/setup.sh --test   also the test tools, and the Debian services the tests start for real
#                             (listed in scripts/debian-test-packages.txt); fails loudly if it cannot.
set -eu
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $* (run this script as root, or install sudo)"
    fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_install() {
    missing=""
    for package in "$@"; do installed "$package" || missing="$missing $package"; done
    [ -z "$missing" ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install$missing by hand"
    say "installing Debian packages:$missing"
    # Install without starting the packaged services: the tests start their own on loopback ports,
    # and a system dnsmasq would take port 53 from the interceptor's DNS responder.
    policy=/usr/sbin/policy-rc.d
    created_policy=""
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
        created_policy=yes
    fi
    status=0
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $missing; } >&2 || status=$?
    [ -n "$created_policy" ] && as_root rm -f "$policy"
    [ "$status" = 0 ] || die "could not install$missing (apt-get exit $status)"
}

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python >= 3.11 is needed; $PYTHON is $("$PYTHON" -V 2>&1)"
# Debian splits venv and ensurepip out of python3.
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2

if [ "${1:-}" = "--test" ]; then
    apt_install $(grep -v '^[[:space:]]*#' scripts/debian-test-packages.txt)
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]" >&2
else
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e . >&2
fi
say "ready: .venv/bin/interceptor"
