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

# The services of the test packages marked `off-at-boot` never start at boot: the tests
# start their own daemons on loopback ports, while a system dnsmasq or unbound would take port 53 from
# `interceptor serve` and Debian's influxd would listen on port 8086 of every interface without
# authentication. The packages' maintainer scripts enable their services on install; this undoes it,
# for services installed now or by an earlier run, and stops them when systemd runs them.
package_services() {  # the systemd services (not templates) and SysV init scripts a package installs
    dpkg-query -L "$1" 2>/dev/null \
        | sed -n -e 's#^/\(usr/\)\{0,1\}lib/systemd/system/\([^/@]*\.service\)$#\2#p' -e 's#^/etc/init\.d/##p'
}

sysv_enabled() { ls /etc/rc[2345].d/S[0-9][0-9]"$1" >/dev/null 2>&1; }

keep_off_at_boot() {
    told=" "
    for package in "$@"; do
        for service in $(package_services "$package"); do
            case "$service" in
                *.service)  # systemctl also turns the SysV links of the same name off
                    command -v systemctl >/dev/null 2>&1 || continue
                    systemctl is-enabled --quiet "$service" 2>/dev/null || continue
                    if [ -d /run/systemd/system ]; then as_root systemctl disable --now --quiet "$service"
                    else as_root systemctl disable --quiet "$service"  # no systemd running: the links alone
                    fi ;;
                *)
                    sysv_enabled "$service" || continue
                    as_root update-rc.d "$service" disable >/dev/null 2>&1
                    [ -d /run/systemd/system ] || as_root service "$service" stop >/dev/null 2>&1 || true ;;
            esac
            name=${service%.service}
            case "$told" in *" $name "*) continue ;; esac
            told="$told$name "
            say "$name will not start at boot (the tests start their own); to run it yourself: sudo systemctl enable --now $name"
        done
    done
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
    packages=scripts/debian-test-packages.txt
    apt_install $(awk '!/^[[:space:]]*#/ && NF { print $1 }' "$packages")
    keep_off_at_boot $(awk '!/^[[:space:]]*#/ && $2 == "off-at-boot" { print $1 }' "$packages")
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]" >&2
else
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e . >&2
fi
say "ready: .venv/bin/interceptor"
