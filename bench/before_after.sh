#!/usr/bin/env bash
# Before/after figures of the three benches, two source trees side by side, runs interleaved.
#
#   bench/before_after.sh BEFORE_TREE AFTER_TREE [ROUNDS]
#
# Each tree needs its own venv at TREE/.venv holding an editable install of that tree, e.g.
#   git -C /work/main worktree add --detach /work/wt-before 8c1e17b
#   python -m venv --system-site-packages /work/wt-before/.venv
#   /work/wt-before/.venv/bin/pip install -q --no-deps -e /work/wt-before
# Needs root (the benches start sandboxes and loopback sshd hosts). Each tree gets a sandbox of its
# own (ids, subnets, folders and EC2 ports below; override with BEFORE_SANDBOX_ID, AFTER_SANDBOX_ID, ...),
# so the two never share state. The sandboxes are taken down at the end unless KEEP_SANDBOXES=1.
#
# For each bench, ROUNDS times (default 2): the before tree, then the after tree. Before every run
# the load average (/proc/loadavg) is printed; then the bench's own output, unchanged, and the CPU
# time of the bench's process tree (GNU time: the bench and the children it waited for; not the
# sandbox hosts' daemons, which are not its children). Nothing is
# computed or judged here: compare the printed lines pair by pair (the machine is shared, so a pair
# taken minutes apart is the fairest comparison it offers).
#
# BENCHES picks and orders the benches (default "up playbook playbook-rtt0 cvpa"):
#   up            bench/up.py
#   playbook      bench/playbook.py at 20 ms round trip: --hosts 1,4,16,32 --rtt 20 --ansible where
#                 the tree's script has --hosts/--ansible, else --rtt 20 (the older script: 1 and 4 hosts)
#   playbook-rtt0 bench/playbook.py with no forwarder, 1 and 4 hosts (+ --serial where the script has it):
#                 the same cases in both trees, without the forwarders (which ran inside the bench's own
#                 process in the older script and in a process of their own in the newer one)
#   cvpa          bench/client_vs_perf_analyzer.py (CVPA_ARGS, default none: its defaults)
# CVPA_ROUNDS (default 1) is the number of before/after pairs for cvpa (it takes ~2 min a run).
# PLAYBOOK_ARGS replaces the newer script's arguments for `playbook` if set.
# Logs go to LOG_DIR (default a new folder under /tmp), one file per run.
# Duration on the 2-core machine, shared and loaded: up ~1-6 min a run (the first also builds the
# tree's sandbox), playbook ~0.5 min (older script) and ~15 min (newer, 32 hosts and Ansible) a run,
# playbook-rtt0 ~0.5 min, cvpa ~2.5 min: about 45 min for the defaults. Start it detached (setsid
# nohup ... &) if your shell may end before it does.
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 BEFORE_TREE AFTER_TREE [ROUNDS]" >&2
    exit 2
fi
BEFORE=$(cd "$1" && pwd) || exit 2
AFTER=$(cd "$2" && pwd) || exit 2
ROUNDS=${3:-2}
for t in "$BEFORE" "$AFTER"; do
    if [ ! -x "$t/.venv/bin/python" ]; then
        echo "error: $t/.venv/bin/python is missing: make the tree's venv first (see the top of $0)" >&2
        exit 2
    fi
done
BENCHES=${BENCHES:-"up playbook playbook-rtt0 cvpa"}
CVPA_ROUNDS=${CVPA_ROUNDS:-1}
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/before-after-XXXXXX)}
mkdir -p "$LOG_DIR"
CLIENT_PY=${INFPROV_CLIENT_PYTHONS:-/var/cache/infprov/client-py38-tritonclient-2.21.0/bin/python}

# tree label -> its environment (run in a subshell so nothing carries over between trees)
tree_env() {
    local label=$1 tree
    if [ "$label" = before ]; then
        tree=$BEFORE
        export INFPROV_SANDBOX_ID=${BEFORE_SANDBOX_ID:-infpd}
        export INFPROV_SANDBOX_SUBNET=${BEFORE_SANDBOX_SUBNET:-10.246.0.0/24}
        export INFPROV_SANDBOX_DIR=${BEFORE_SANDBOX_DIR:-/var/lib/infprov-sandbox-infpd}
        export INFPROV_SANDBOX_EC2_PORT=${BEFORE_SANDBOX_EC2_PORT:-5074}
        export INFPROV_HOME=${BEFORE_HOME:-/tmp/infpd-home}
    else
        tree=$AFTER
        export INFPROV_SANDBOX_ID=${AFTER_SANDBOX_ID:-infpc}
        export INFPROV_SANDBOX_SUBNET=${AFTER_SANDBOX_SUBNET:-10.245.0.0/24}
        export INFPROV_SANDBOX_DIR=${AFTER_SANDBOX_DIR:-/var/lib/infprov-sandbox-infpc}
        export INFPROV_SANDBOX_EC2_PORT=${AFTER_SANDBOX_EC2_PORT:-5073}
        export INFPROV_HOME=${AFTER_HOME:-/tmp/infpc-home}
    fi
    export PATH="$tree/.venv/bin:$PATH"
    export INFPROV_CLIENT_PYTHONS=$CLIENT_PY
    cd "$tree" || exit 2
}

playbook_args() {  # the arguments the tree's bench/playbook.py takes for the 20 ms case
    if python -m bench.playbook --help 2>/dev/null | grep -q -- '--ansible'; then
        echo "${PLAYBOOK_ARGS:---hosts 1,4,16,32 --rtt 20 --ansible}"
    else
        echo "--rtt 20"
    fi
}

playbook0_args() {  # 1 and 4 hosts, no forwarder; one at a time too where the script can
    if python -m bench.playbook --help 2>/dev/null | grep -q -- '--serial'; then
        echo "--hosts 1,4 --serial"
    else
        echo ""
    fi
}

run_one() {  # bench label round
    local bench=$1 label=$2 round=$3
    (
        tree_env "$label"
        local cmd log
        case $bench in
            up) cmd="python bench/up.py" ;;
            playbook) cmd="python -m bench.playbook $(playbook_args)" ;;
            playbook-rtt0) cmd="python -m bench.playbook $(playbook0_args)" ;;
            cvpa) cmd="python bench/client_vs_perf_analyzer.py ${CVPA_ARGS:-}" ;;
            *) echo "unknown bench $bench" >&2; exit 2 ;;
        esac
        log="$LOG_DIR/$bench-$label-$round.log"
        echo "=== $bench, $label ($(pwd) @ $(git rev-parse --short HEAD)), round $round"
        echo "    command: $cmd   (sandbox $INFPROV_SANDBOX_ID)"
        echo "    load before: $(cut -d' ' -f1-3 /proc/loadavg)   at $(date -u +%H:%M:%S)"
        local start=$SECONDS
        # shellcheck disable=SC2086
        /usr/bin/time -o "$log.time" -f "%e s wall, %U s user + %S s system CPU (the bench process and its waited-for children)" \
            $cmd >"$log" 2>&1
        local rc=$?
        sed 's/^/    | /' "$log"
        echo "    time: $(tail -1 "$log.time")"
        echo "    exit $rc after $((SECONDS - start)) s; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
    )
}

sandboxes_down() {
    [ "${KEEP_SANDBOXES:-0}" = 1 ] && return
    for label in before after; do
        (tree_env "$label"; echo "=== sandbox down ($label, $INFPROV_SANDBOX_ID)"; infprov sandbox down 2>&1 | tail -3)
    done
}
trap sandboxes_down EXIT

echo "before: $BEFORE @ $(git -C "$BEFORE" rev-parse --short HEAD)"
echo "after:  $AFTER @ $(git -C "$AFTER" rev-parse --short HEAD)"
echo "machine: $(nproc) CPU(s); logs in $LOG_DIR"
for bench in $BENCHES; do
    n=$ROUNDS
    [ "$bench" = cvpa ] && n=$CVPA_ROUNDS
    for round in $(seq 1 "$n"); do
        run_one "$bench" before "$round"
        run_one "$bench" after "$round"
    done
done
