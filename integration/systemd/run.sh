#!/bin/bash
# make test-systemd: the systemd cgroup driver test (./systemd_test.go)
# under a real systemd, PID 1 of a systemd-nspawn container (./nspawn.sh),
# against containerd 1.6.20 and 2.4.2 and each runsc given.
#
#   run.sh <test binary> <shim dir> <pause binary> <runsc>...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
test_bin=$(realpath "$1") shim_dir=$(realpath "$2") pause=$(realpath "$3"); shift 3
# Elapsed seconds with one decimal since a `date +%s%N` reading (no bc).
since() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
t0=$(date +%s%N)
"$here/nspawn.sh" setup
trap '"$here/nspawn.sh" stop' EXIT
setup=$(since "$t0")
t1=$(date +%s%N)
P=$("$here/nspawn.sh" start)
printf '==> systemd %s up (PID 1 = host pid %s): setup %ss, boot %ss\n' \
	"$(nsenter -t "$P" -a systemctl --version | head -1 | cut -d' ' -f2)" "$P" "$setup" "$(since "$t1")"
for r in "$@"; do
	v=$("$r" --version 2>/dev/null | sed -n 's/^runsc version //p')
	echo "==> systemd leg: runsc $v ($r) x containerd 1.6.20, 2.4.2"
	# A service of the container's systemd, so that containerd and the shim
	# live in its cgroup tree (nsenter alone keeps the host's cgroups).
	nsenter -t "$P" -a systemd-run -P --wait -q -p Type=exec -p Delegate=yes \
		--setenv=RUNSC_SHIM_SYSTEMD_TEST=1 --setenv=CI=true \
		--setenv=RUNSC_SHIM_DIR="$shim_dir" --setenv=RUNSC_SHIM_PAUSE="$pause" \
		--setenv=RUNSC="$r" --setenv=CONTAINERD24="${CONTAINERD24:-/var/cache/runsc-shim-ci/bin/containerd}" \
		--working-directory="$(dirname "$test_bin")" \
		"$test_bin" -test.v -test.count=1 -test.timeout=20m
	echo "==> systemd leg passed: runsc $v ($r)"
done
echo "==> make test-systemd passed in $(since "$t0")s"
