#!/bin/sh
# Installs the Debian packages of the SLURM test cluster (tests/support/slurm/cluster.py) when they are
# missing and apt-get can install them (root). Never fails: without them the SLURM tests skip
# and say what is missing.
PACKAGES="slurm-wlm munge slurmdbd mariadb-server"

if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v slurmdbd >/dev/null \
    && command -v munged >/dev/null && command -v mariadbd >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "SLURM test cluster: $PACKAGES not installed and apt-get unusable here (needs root);" \
         "the SLURM tests will skip" >&2
    exit 0
fi

# Package scripts must not start system daemons (mariadb, munge, slurm*): the tests start their
# own on free ports. policy-rc.d is Debian's switch for that; remove it only if we made it.
POLICY=/usr/sbin/policy-rc.d
MADE_POLICY=
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod 755 "$POLICY" && MADE_POLICY=1
    trap '[ -n "$MADE_POLICY" ] && rm -f "$POLICY"' EXIT INT TERM
fi

echo "SLURM test cluster: apt-get install $PACKAGES" >&2
if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES; } \
    >/tmp/lidcseg-slurm-apt.log 2>&1; then
    echo "SLURM test cluster: apt-get failed (log: /tmp/lidcseg-slurm-apt.log); the SLURM tests will skip" >&2
fi
exit 0
