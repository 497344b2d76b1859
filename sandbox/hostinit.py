"""The shell that lays out one sandbox host's private file system, run inside its namespaces."""

from __future__ import annotations

# Runs under `nsenter -t INIT -m -u -n -p bash -es -- NAME IP NDEV HOSTNAME HOSTDIR KEYPUB PRIVATE`.
# Everything it mounts lives in the host's own mount namespace and disappears with it.
LAYOUT_SCRIPT = r"""
name=$1 ip=$2 ndev=$3 hn=$4 hdir=$5 keypub=$6 private=$7
hostname "$hn"

# /etc: a copy-on-write overlay over the machine's /etc, so sudo-written files stay on this host
mount -t overlay "infp-etc-$name" -o "lowerdir=/etc,upperdir=$hdir/etc-upper,workdir=$hdir/etc-work" /etc
echo "$hn" > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n%s %s\n' "$hn" "$ip" "$hn" > /etc/hosts
# names: /etc/hosts only, and no nameserver that answers (nothing listens on 53 in this network
# namespace: refused at once), so nothing on the host looks a name up beyond the sandbox. rm first:
# either file may be a symlink into the machine's /run.
nss=$(sed 's/^hosts:.*/hosts:          files/' /etc/nsswitch.conf 2>/dev/null || true)
rm -f /etc/resolv.conf /etc/nsswitch.conf
printf '# infprov sandbox host: no DNS (the sandbox is sealed)\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
  > /etc/resolv.conf
printf '%s\n' "$nss" > /etc/nsswitch.conf
grep -q '^hosts:' /etc/nsswitch.conf || echo 'hosts:          files' >> /etc/nsswitch.conf
install -m 600 "$hdir/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 644 "$hdir/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
mkdir -p /etc/ssh/infprov_keys
install -m 644 "$keypub" /etc/ssh/infprov_keys/ubuntu
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

# /home/ubuntu and /var/lib/docker: this host's own folders
mount --bind "$hdir/home" /home/ubuntu
mount --bind "$hdir/docker" /var/lib/docker

# /run: private, so /var/run/docker.sock is this host's daemon (also under sudo)
mount -t tmpfs -o mode=755,nosuid,nodev,size=64m "infp-run-$name" /run
mkdir -p /run/sshd /run/lock /run/user && chmod 1777 /run/lock

# /dev: a private copy with its own pts and shm, and this host's Neuron stand-in devices
mount -t tmpfs -o mode=755,nosuid,size=1m "infp-dev-$name" "$hdir/dev"
cp -a --one-file-system /dev/. "$hdir/dev/" 2>/dev/null || true
rm -rf "$hdir/dev/pts" "$hdir/dev/shm" "$hdir/dev/ptmx" "$hdir"/dev/neuron*
mkdir -p "$hdir/dev/pts" "$hdir/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$hdir/dev/pts"
ln -s pts/ptmx "$hdir/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=1g shm "$hdir/dev/shm"
i=0
while [ "$i" -lt "$ndev" ]; do mknod -m 666 "$hdir/dev/neuron$i" c 1 3; i=$((i + 1)); done
mount --move "$hdir/dev" /dev

# /sys: a fresh sysfs for this network namespace, with the cgroup trees moved back in for dockerd
mkdir -p /run/.cg && mount --rbind /sys/fs/cgroup /run/.cg
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount --move /run/.cg /sys/fs/cgroup && rmdir /run/.cg

# the sandbox's private folder (every host's files and the login key) is not visible from a host
mount -t tmpfs -o mode=755,size=1m infp-mask "$private"
"""

# The host's init: holds the namespaces open and reaps orphans, as PID 1 of the host.
INIT_LOOP = "touch {ready}; trap 'exit 0' TERM; while :; do sleep 86400 & wait $!; done"


# ---------------------------------------------------------------- power: the host's `shutdown`
# A host has no systemd: its `shutdown` (on a tmpfs over /usr/local/sbin, first in sudo's secure_path,
# in the host's mount namespace only) schedules a power-off the way systemd's does (`-P +N`, `now`,
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

POWER_INSTALL = """mountpoint -q /usr/local/sbin || mount -t tmpfs -o mode=755,size=1m infp-sbin /usr/local/sbin
cat > /usr/local/sbin/shutdown
chmod 755 /usr/local/sbin/shutdown
"""

POWER_CANCEL = """state=/run/infprov-power
[ -s $state.pid ] && kill -- "-$(cat $state.pid)" 2>/dev/null
rm -f $state.pid $state.at $state.off
"""
