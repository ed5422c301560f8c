#!/usr/bin/env bash
# A one-node Slurm cluster on this host, for the test suite and for trying `-profile slurm` by hand.
#
#   scripts/slurm_cluster.sh up DIR     install slurm-wlm + munge from Debian when absent (needs root), write
#                                       DIR/slurm.conf, start munged, slurmctld and slurmd, wait for the node;
#                                       prints the line to eval: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm_cluster.sh down DIR   stop the daemons started by `up` (by their pid files)
#
# Facts of this kind of machine (Debian 12, slurm-wlm 22.05, no systemd): /run/munge must be made for the munge
# user and munged run as that user; slurmctld and slurmd run as root in the foreground (-D), sent to the
# background here; no slurmdbd, so finished jobs are read with `squeue -t all` (MinJobAge keeps them an hour).
# Partitions: main (default) and gpu, on the same node, which declares one pretend GPU (gres on /dev/null).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [[ -z "$cmd" || -z "$dir" ]]; then
    echo "usage: $0 up|down DIR" >&2
    exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

die() { echo "slurm_cluster: $*" >&2; exit 1; }

down() {
    for name in slurmd slurmctld munged; do
        pidfile="$dir/$name.pid"
        [[ -f "$pidfile" ]] || continue
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

install_if_absent() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [[ "$(id -u)" == 0 ]] || die "slurm-wlm and munge are not installed and this is not root (apt-get install slurm-wlm munge)"
    echo "slurm_cluster: installing slurm-wlm and munge from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$dir/apt.log" 2>&1 \
        || { apt-get update -q >>"$dir/apt.log" 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$dir/apt.log" 2>&1; } \
        || die "apt-get install slurm-wlm munge failed (see $dir/apt.log)"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already serving this host
    fi
    [[ -f /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || /usr/sbin/mungekey --create; }
    mkdir -p /run/munge
    chown munge:munge /run/munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$dir/munged.pid"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "munged did not start"
}

write_conf() {
    local host mem
    host="$(hostname -s)"
    mem=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
    mkdir -p "$dir/state" "$dir/spool"
    cat >"$dir/slurm.conf" <<EOF
ClusterName=scfan-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=3600
SchedulerParameters=sched_interval=1
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
EOF
    # one pretend GPU (a device file every host has), so that jobs asking --gres=gpu:1 are scheduled: the
    # routing of GPU-labelled tasks can be tested on a machine without one
    echo "Name=gpu File=/dev/null" >"$dir/gres.conf"
}

up() {
    [[ "$(id -u)" == 0 ]] || die "the daemons run as root here (SlurmUser=root); run as root"
    install_if_absent
    down
    start_munge
    write_conf
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -D -i -f "$SLURM_CONF" >"$dir/slurmctld.out" 2>&1 &
    echo $! >"$dir/slurmctld.pid"
    slurmd -D -f "$SLURM_CONF" >"$dir/slurmd.out" 2>&1 &
    echo $! >"$dir/slurmd.pid"
    for _ in $(seq 150); do
        state="$(sinfo -h -o %t 2>/dev/null | head -1 || true)"
        if [[ "$state" == idle* || "$state" == mix* ]]; then
            echo "export SLURM_CONF=$SLURM_CONF"
            return
        fi
        sleep 0.2
    done
    tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 2>/dev/null || true
    down
    die "the node did not become idle within 30 s (state '${state:-none}'); logs in $dir"
}

case "$cmd" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
