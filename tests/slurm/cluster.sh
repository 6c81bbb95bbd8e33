#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for testing the workflow's SLURM profile.
#
#   tests/slurm/cluster.sh install     apt-get Debian's slurmctld, slurmd, slurm-client and munge (root)
#   tests/slurm/cluster.sh up   [DIR]  start munged, slurmctld and slurmd; return once the node is idle
#   tests/slurm/cluster.sh down [DIR]  cancel every job, stop the three daemons by PID, remove the config link
#   tests/slurm/cluster.sh env  [DIR]  print the SLURM_CONF export for client commands (sbatch, squeue)
#
# Everything lives under DIR (default $DDLSTM_SLURM_DIR or /tmp/ddlstm-slurm): a munge key and socket of
# its own, slurm.conf, state, spool, logs and PID files. Nothing else on the machine is touched except
# /etc/slurm/slurm.conf, a symlink to DIR/slurm.conf: job steps (srun inside a job) read the default path.
# An existing /etc/slurm/slurm.conf that is not ours is left alone and `up` refuses to start.
# Run it, and submit jobs, as root: the daemons run as root and the munge socket is root's alone.
set -euo pipefail

COMMAND=${1:-}
DIR=$(realpath -m "${2:-${DDLSTM_SLURM_DIR:-/tmp/ddlstm-slurm}}")
SYSTEM_CONF=/etc/slurm/slurm.conf
# Non-default ports, so that a cluster this machine may already belong to keeps its own.
CTLD_PORT=${DDLSTM_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${DDLSTM_SLURMD_PORT:-16818}
# Finished jobs stay visible to `squeue` this long. The SLURM executor plugin polls with `squeue` when there
# is no accounting database, at intervals growing to 180 s: a job must outlive the longest interval.
MIN_JOB_AGE=300
GPU_SLOTS=2
MARK="# Written by tests/slurm/cluster.sh"

fail() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() {
    [[ $(id -u) == 0 ]] || fail "run as root (the daemons run as root and bind their own ports)"
}

need_binaries() {
    local missing=()
    for binary in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo; do
        command -v "$binary" > /dev/null || missing+=("$binary")
    done
    ((${#missing[@]} == 0)) || fail "not installed: ${missing[*]} (run: $0 install)"
}

install() {
    need_root
    local packages=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: fetch them only then.
    apt-get install -y --no-install-recommends "${packages[@]}" > /dev/null 2>&1 \
        || { apt-get update > /dev/null && apt-get install -y --no-install-recommends "${packages[@]}" > /dev/null; }
    echo "installed: $(slurmctld -V), $(munged -V 2>&1 | head -1)"
}

# PID of a running daemon from its PID file, or nothing.
running_pid() {
    local file=$1 pid
    [[ -s $file ]] || return 0
    pid=$(< "$file")
    if kill -0 "$pid" 2> /dev/null; then echo "$pid"; fi
}

write_config() {
    local host node cpus memory
    host=$(hostname -s)
    # The node as slurmd itself sees it (CPUs, sockets, cores, threads, memory): a configuration that claims
    # more than slurmd finds gets the node drained.
    node=$(slurmd -C | head -1)
    [[ $node == NodeName=* ]] || fail "slurmd -C did not describe this node: $node"
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<< "$node")
    memory=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<< "$node")
    cat > "$DIR/slurm.conf" << CONF
$MARK for $host: a one-node test cluster, $cpus CPUs and $memory MB.
ClusterName=ddlstm-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in containers and CI machines: plain process tracking. Each job is bound to the CPUs it was
# given (CPU affinity, no cgroups needed), as a cluster confines jobs: its results must not depend on it.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job that asks for no memory gets its share per CPU instead of the whole node.
DefMemPerCPU=$((memory / cpus))
MinJobAge=$MIN_JOB_AGE
ReturnToService=2
InactiveLimit=0
KillWait=5
# No accounting database: sacct has nothing to read. Every finished job is appended to a text file instead,
# SLURM's own record of what ran.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobs.txt
# Two GPU slots without devices: jobs that ask for a GPU (the workflow's training rules do) are scheduled as
# on a GPU cluster, one per slot, and run on the CPU.
GresTypes=gpu
${node/NodeName=$host/NodeName=$host NodeAddr=127.0.0.1} Gres=gpu:$GPU_SLOTS State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    # slurmd reads gres.conf from the folder of slurm.conf. It drops a GPU without a device file, so each slot
    # gets a character device of its own: a copy of /dev/null, never opened.
    mkdir -p "$DIR/dev"
    for ((slot = 0; slot < GPU_SLOTS; slot++)); do mknod "$DIR/dev/gpu$slot" c 1 3; done
    printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/dev/gpu[0-%s]\n' "$host" "$DIR" $((GPU_SLOTS - 1)) > "$DIR/gres.conf"
}

ours() { [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$DIR/slurm.conf" ]]; }

check_system_config() {
    if ! ours && [[ -e $SYSTEM_CONF || -L $SYSTEM_CONF ]]; then
        fail "$SYSTEM_CONF exists and is not this test cluster's; refusing to replace it"
    fi
}

link_system_config() {
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ours || ln -s "$DIR/slurm.conf" "$SYSTEM_CONF"
}

wait_for_idle_node() {
    local state
    for _ in $(seq 60); do
        [[ -n $(running_pid "$DIR/run/slurmctld.pid") ]] || { state="slurmctld exited"; break; }
        state=$(sinfo --noheader --Node --format=%t 2> /dev/null | head -1 || true)
        case $state in
            idle) return 0 ;;
            down* | drain* | fail*) break ;;
        esac
        sleep 0.5
    done
    echo "node state: ${state:-unknown}" >&2
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    fail "the node did not become idle (logs above, in $DIR/log)"
}

up() {
    need_root
    need_binaries
    [[ -z $(running_pid "$DIR/run/slurmctld.pid") ]] || fail "a cluster is already running from $DIR (run: $0 down $DIR)"
    check_system_config
    for port in "$CTLD_PORT" "$SLURMD_PORT"; do
        if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
            fail "port $port is in use; choose others with DDLSTM_SLURMCTLD_PORT and DDLSTM_SLURMD_PORT"
        fi
    done
    # Reuse only an empty folder or one of an earlier test cluster: never delete anything else.
    if [[ -d $DIR && -n $(ls -A "$DIR") ]] && ! grep -qs "^$MARK" "$DIR/slurm.conf"; then
        fail "$DIR is not empty and holds no test cluster of ours; name another folder"
    fi
    rm -rf "${DIR:?}"/{munge,state,spool,run,log,dev,slurm.conf,gres.conf}
    # Whatever fails from here on, leave nothing running.
    trap 'status=$?; if ((status != 0)); then echo "cluster.sh: up failed; stopping what it started" >&2; down > /dev/null; fi' EXIT
    mkdir -p "$DIR"/{munge,state,spool,run,log}
    chmod 700 "$DIR/munge"
    write_config
    link_system_config
    export SLURM_CONF=$DIR/slurm.conf

    mungekey --create --keyfile="$DIR/munge/munge.key"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    wait_for_idle_node
    trap - EXIT
    echo "SLURM test cluster up: $(sinfo --noheader --format='%P %D nodes %c CPUs %m MB %t'), in $DIR"
}

# Stop a daemon by its PID file: TERM, then KILL after 10 s.
stop() {
    local name=$1 pid
    pid=$(running_pid "$DIR/run/$name.pid")
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 20); do
        kill -0 "$pid" 2> /dev/null || return 0
        sleep 0.5
    done
    echo "cluster.sh: $name ($pid) ignored TERM; killing it" >&2
    kill -KILL "$pid" 2> /dev/null || true
}

down() {
    need_root
    export SLURM_CONF=$DIR/slurm.conf
    if [[ -n $(running_pid "$DIR/run/slurmctld.pid") ]]; then
        # Cancel whatever is still queued or running, and give the job steps a moment to end.
        scancel --full --user="$(id -un)" 2> /dev/null || true
        for _ in $(seq 20); do
            [[ -z $(squeue --noheader --states=PENDING,RUNNING,COMPLETING 2> /dev/null) ]] && break
            sleep 0.5
        done
    fi
    stop slurmd
    stop slurmctld
    stop munged
    # Job steps outlive slurmd when a job ignored its cancellation; ours carry this cluster's SLURM_CONF.
    for pid in $(pgrep -x slurmstepd || true); do
        if grep -qzx "SLURM_CONF=$DIR/slurm.conf" "/proc/$pid/environ" 2> /dev/null; then
            echo "cluster.sh: killing a job step left behind ($pid)" >&2
            kill -KILL "$pid" 2> /dev/null || true
        fi
    done
    if ours; then rm -f "$SYSTEM_CONF"; fi
    echo "SLURM test cluster down ($DIR kept for its logs)"
}

case $COMMAND in
    install) install ;;
    up) up ;;
    down) down ;;
    env) echo "export SLURM_CONF=$DIR/slurm.conf" ;;
    *) fail "usage: $0 install | up [DIR] | down [DIR] | env [DIR]" ;;
esac
