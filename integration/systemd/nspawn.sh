#!/bin/bash
# A real systemd (PID 1 of a systemd-nspawn container of a debootstrapped
# Debian bookworm) for the systemd cgroup driver test; see
# ../shared/systemd-test-env.md for why each step is there.
#
#   nspawn.sh setup     debootstrap the tree once (cached), idempotent
#   nspawn.sh start     boot it (prints the container's PID 1 as a host pid)
#   nspawn.sh stop      halt it and remove its cgroups
set -euo pipefail
CACHE=${SYSTEMD_TEST_CACHE:-/var/cache/runsc-shim-ci/systemd}
TREE=$CACHE/bookworm
CG=runsc-shim-nspawn
# Bound read-only into the container at the same paths: the repository (the
# shim and the test binary built on the host) and the binaries under test.
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
RUNSC_CURRENT=${RUNSC_CURRENT:-/var/cache/runsc-shim-ci/runsc-0.0.0-20260905035102-160fafc42237/runsc}
RUN=/run/runsc-shim-nspawn
mkdir -p "$RUN"

setup() {
	for p in systemd-container debootstrap dbus; do
		dpkg -s $p >/dev/null 2>&1 || missing="${missing:-} $p"; done
	if [ -n "${missing:-}" ]; then
		echo "installing:$missing"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
	fi
	if [ ! -e "$TREE/.complete" ]; then
		MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
		[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
		[ -n "$MIRROR" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
		rm -rf "$TREE.new"; mkdir -p "$CACHE"
		echo "debootstrap bookworm into $TREE (once, ~40 s)"
		debootstrap --variant=minbase --include=systemd,dbus,systemd-sysv,libpam-systemd \
			bookworm "$TREE.new" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
			{ tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
		echo runsc-shim-test > "$TREE.new/etc/hostname"
		touch "$TREE.new/.complete"
		mv "$TREE.new" "$TREE"
	fi
	# What the integration harness runs besides containerd and runsc (bound
	# in from the host at boot): the CNI bridge, ip, iptables, busybox.
	if [ ! -e "$TREE/.packages" ]; then
		echo "installing the harness's packages into $TREE (once)"
		systemd-nspawn -q --register=no --keep-unit -D "$TREE" --pipe sh -c 'apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			containernetworking-plugins iproute2 iptables busybox-static ca-certificates' \
			>"$CACHE/packages.log" 2>&1 || { tail -20 "$CACHE/packages.log" >&2; exit 1; }
		touch "$TREE/.packages"
	fi
	# nspawn mounts the v1 controller hierarchies read-only: remount them
	# read-write before systemd starts, or scopes reach only name=systemd.
	install -D -m 0755 /dev/stdin "$TREE/usr/local/sbin/cgroup-rw-init" <<'INIT'
#!/bin/sh
for c in /sys/fs/cgroup/*; do
  case "$c" in */unified|*/systemd) continue ;; esac
  [ -L "$c" ] && continue
  mountpoint -q "$c" && mount -o remount,bind,rw "$c"
done
exec /lib/systemd/systemd "$@"
INIT
}

# boot runs in the background: it moves itself out of the host's root
# cgroups (else the container's systemd builds its tree at the host's
# roots) and execs nspawn.
boot() {
	for h in /sys/fs/cgroup/*/; do h=${h%/}; [ -e "$h/cgroup.procs" ] || continue
		mkdir -p "$h/$CG"
		if [ -e "$h/cpuset.cpus" ]; then cat "$h/cpuset.cpus" > "$h/$CG/cpuset.cpus"; cat "$h/cpuset.mems" > "$h/$CG/cpuset.mems"; fi
		echo $$ > "$h/$CG/cgroup.procs"; done
	exec systemd-nspawn -D "$TREE" --register=no --keep-unit --console=passive \
		--capability=all --system-call-filter="@keyring" --kill-signal=SIGRTMIN+3 \
		--private-network \
		--bind-ro="$REPO" --bind-ro=/usr/bin/containerd --bind-ro=/usr/bin/runsc \
		--bind-ro=/var/cache/runsc-shim-ci/bin --bind-ro="$(dirname "$RUNSC_CURRENT")" \
		/usr/local/sbin/cgroup-rw-init
}

pid1() {
	local n=$(cat "$RUN/nspawn.pid" 2>/dev/null) || return 1
	pgrep -P "$n" -x systemd
}

start() {
	if p=$(pid1 2>/dev/null); then echo "$p"; return; fi
	setsid nohup "$0" boot >"$RUN/nspawn.log" 2>&1 </dev/null & echo $! > "$RUN/nspawn.pid"
	for i in $(seq 100); do
		if p=$(pid1 2>/dev/null) && st=$(nsenter -t "$p" -a systemctl is-system-running 2>/dev/null); then
			case "$st" in running|degraded) echo "$p"; return ;; esac
		fi
		# systemd's own boot: polled, not waited on blindly (at most 20 s).
		sleep 0.2
	done
	echo "systemd in $TREE did not come up; log: $RUN/nspawn.log" >&2; tail -20 "$RUN/nspawn.log" >&2; exit 1
}

stop() {
	local n
	n=$(cat "$RUN/nspawn.pid" 2>/dev/null) || return 0
	if kill -TERM "$n" 2>/dev/null; then
		while kill -0 "$n" 2>/dev/null; do sleep 0.1; done
	fi
	rm -f "$RUN/nspawn.pid"
	for h in /sys/fs/cgroup/*/$CG; do [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; ; done
	return 0
}

case "${1:-}" in
setup) setup ;;
boot) boot ;;
start) start ;;
stop) stop ;;
*) echo "usage: $0 setup|start|stop" >&2; exit 2 ;;
esac
