"""The shell that lays out one sandbox host's private file system, run inside its namespaces."""

from __future__ import annotations

# The host's init, PID 1 of its namespaces (user, mount, network, UTS, IPC, PID), run as the host's root (an
# unprivileged ID on the machine) with the host's folder as its working directory:
#   bash -c INIT_SCRIPT init NAME NDEV HOSTNAME PUBLIC
# where ./lower and ./public are the host root file system and the sandbox's public folder, bound there by
# machine root in a mount namespace of the launch's own (BIND_SCRIPT): their real paths may pass through
# folders closed to the host's IDs (the sandbox's private folder; a test's sandbox under /tmp/pytest-of-root).
# It builds the host's root file system at ./root (an overlay: the read-only host root file system LOWER under
# the host's own ./upper), mounts the host's own /home/ubuntu, docker root, /proc, /sys, /run, /dev (the
# machine's null, zero, full, random, urandom and tty bound in: a mount made in a user namespace cannot hold
# devices) and a read-only view of the sandbox's public folder (python_backend's stand-in), pivots into it and
# detaches the machine's root: nothing below the host's `/` leads back to the machine's files, also after
# `umount` of whatever is mounted. Then it says it is ready and reaps orphans.
INIT_SCRIPT = r"""set -e
name=$1 ndev=$2 hn=$3 public=$4
mount -t overlay "infp-root-$name" -o "lowerdir=lower,upperdir=upper,workdir=work,userxattr" root
mount --bind home root/home/ubuntu
mount --bind docker root/var/lib/docker
mkdir -p "root$public"
mount --bind public "root$public"
mount -o remount,bind,ro "root$public"
cd root
mount -t proc -o nosuid,nodev,noexec proc proc
mount -t sysfs -o nosuid,nodev,noexec sysfs sys
mount --rbind /sys/fs/cgroup sys/fs/cgroup
mount -t tmpfs -o mode=755,nosuid,nodev,size=64m "infp-run-$name" run
mkdir -p run/sshd run/lock run/user
chmod 1777 run/lock
mount -t tmpfs -o mode=755,nosuid,size=1m "infp-dev-$name" dev
for d in null zero full random urandom tty; do : > "dev/$d"; mount --bind "/dev/$d" "dev/$d"; done
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin
ln -s /proc/self/fd/1 dev/stdout
ln -s /proc/self/fd/2 dev/stderr
mkdir dev/pts dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts dev/pts
ln -s pts/ptmx dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev,size=1g shm dev/shm
i=0
while [ "$i" -lt "$ndev" ]; do : > "dev/neuron$i"; mount --bind /dev/null "dev/neuron$i"; i=$((i + 1)); done
mkdir -p .machine-root
pivot_root . .machine-root
cd /
umount -l /.machine-root
rmdir /.machine-root
hostname "$hn"
touch /run/infprov-init.ready
trap 'exit 0' TERM
while :; do sleep 86400 & wait $!; done
"""

# Run by machine root in a mount namespace of its own, in the host's folder, before it starts the host's init
# there (`sh -c BIND_SCRIPT sh LOWER PUBLIC INIT-COMMAND...`): nothing of it is in the machine's mount table.
BIND_SCRIPT = r"""set -e
mount --bind "$1" lower
mount --bind "$2" public
shift 2
exec "$@"
"""

# Neuron stand-in devices: /dev/null bound onto /dev/neuron0..N-1 (run inside the host as its root, with N).
NEURON_DEVICES_SCRIPT = r"""for f in /dev/neuron*; do
  [ -e "$f" ] || continue; umount "$f" 2>/dev/null || true; rm -f "$f"
done
i=0
while [ "$i" -lt "$1" ]; do : > "/dev/neuron$i"; mount --bind /dev/null "/dev/neuron$i"; i=$((i + 1)); done
"""

# The host's /etc, written inside the host as its root (its own overlay layer holds it):
#   nsenter -t INIT -U -m -u -n -p -i bash -es -- IP HOSTNAME
# The host key and the login key were put into the upper layer before the host started (sandbox/nshost.py).
LAYOUT_SCRIPT = r"""
ip=$1 hn=$2
echo "$hn" > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n%s %s\n' "$hn" "$ip" "$hn" > /etc/hosts
# names: /etc/hosts only, and no nameserver that answers (nothing listens on 53 in this network
# namespace: refused at once), so nothing on the host looks a name up beyond the sandbox.
nss=$(sed 's/^hosts:.*/hosts:          files/' /etc/nsswitch.conf 2>/dev/null || true)
rm -f /etc/resolv.conf /etc/nsswitch.conf
printf '# infprov sandbox host: no DNS (the sandbox is sealed)\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
  > /etc/resolv.conf
printf '%s\n' "$nss" > /etc/nsswitch.conf
grep -q '^hosts:' /etc/nsswitch.conf || echo 'hosts:          files' >> /etc/nsswitch.conf
chmod 600 /etc/ssh/ssh_host_ed25519_key
cat > /etc/ssh/sshd_config <<EOF
Port 22
ListenAddress $ip
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile /etc/ssh/infprov_keys/%u .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers ubuntu
X11Forwarding no
PrintMotd no
MaxSessions 64
MaxStartups 64:30:128
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
SetEnv DOCKER_HOST=unix:///var/run/docker.sock
EOF
"""


# ---------------------------------------------------------------- power: the host's `shutdown`
# A host has no systemd: its `shutdown` (in /usr/local/sbin of the host's own root file system, first in
# sudo's secure_path) schedules a power-off the way systemd's does (`-P +N`, `now`,
# `-c` to cancel, a new call replacing the last) by leaving POWER_STATE.off when it comes due. The
# sandbox's EC2 endpoint (ec2server.watch_power) sees that file and terminates the host's instance, as
# EC2 does for an instance launched with InstanceInitiatedShutdownBehavior=terminate.
POWER_STATE = "/run/infprov-power"

SHUTDOWN_STANDIN = r"""#!/bin/sh
# infprov sandbox host: stands in for shutdown(8); see sandbox/hostinit.py
state=/run/infprov-power
when=1 cancel=
for arg in "$@"; do
  case $arg in
    -c) cancel=1 ;;
    -P|-h|-H|--poweroff|--halt|--no-wall) ;;
    now) when=0 ;;
    +[0-9]*) when=${arg#+} ;;
    *) echo "shutdown (infprov sandbox stand-in): unsupported argument: $arg" >&2; exit 1 ;;
  esac
done
case $when in ''|*[!0-9]*) echo "shutdown: bad time: $when" >&2; exit 1 ;; esac
[ -s $state.pid ] && kill -- "-$(cat $state.pid)" 2>/dev/null
rm -f $state.pid $state.at
if [ -n "$cancel" ]; then echo "Shutdown cancelled." >&2; exit 0; fi
at=$(( $(date +%s) + when * 60 ))
setsid sh -c "sleep $((when * 60)); touch $state.off" </dev/null >/dev/null 2>&1 &
echo $! > $state.pid
echo $at > $state.at
echo "Shutdown scheduled for $(date -u -d @$at), use 'shutdown -c' to cancel." >&2
"""

POWER_INSTALL = """mkdir -p /usr/local/sbin
cat > /usr/local/sbin/shutdown
chmod 755 /usr/local/sbin/shutdown
"""

POWER_CANCEL = """state=/run/infprov-power
[ -s $state.pid ] && kill -- "-$(cat $state.pid)" 2>/dev/null
rm -f $state.pid $state.at $state.off
"""
