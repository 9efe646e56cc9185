#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, for trying and testing the Slurm profile (slurm/).
#
#   bash scripts/slurm_local.sh up       start munged, slurmctld and slurmd; wait for the node
#   bash scripts/slurm_local.sh down     stop the daemons this script started (by PID) and
#                                        delete the state directory
#   bash scripts/slurm_local.sh status   sinfo / squeue of the cluster
#   bash scripts/slurm_local.sh env      print the exports that point clients at this cluster:
#                                        eval "$(bash scripts/slurm_local.sh env)"
#
# Needs root and Debian's packages: apt-get install slurmctld slurmd slurm-client munge
# (Slurm 22.05 on Debian 12). No systemd: the daemons are started by hand. Everything lives in
# one state directory, $CMKD_SLURM_DIR (default /tmp/cmkd-slurm): slurm.conf, its own munge key
# and socket (the system munged, if any, is left alone), spool, state, logs and PID files.
# Clients find the cluster through SLURM_CONF=$CMKD_SLURM_DIR/slurm.conf, and through an srun
# wrapper in $CMKD_SLURM_DIR/bin (put first in PATH): the Snakemake job-step plugin removes every
# SLURM_* variable, SLURM_CONF included, before it starts a job's command with srun inside the
# allocation, and srun would then look for /etc/slurm/slurm.conf (a real cluster has it there).
#
# Settings that the Slurm profile relies on, measured with Slurm 22.05:
#   - No slurmdbd: sacct does not work, so the profile queries job status with squeue, which
#     only sees a finished job for MinJobAge seconds; MinJobAge must be >= 3 x the plugin's
#     slurm-init-seconds-before-status-checks (else the plugin silently goes back to sacct).
#   - EnforcePartLimits=ALL: a job that asks for more than the node has is refused at sbatch
#     instead of pending for ever (Snakemake would wait for ever).
#   - RealMemory below what `slurmd -C` reports (else the node is INVAL); NodeAddr=127.0.0.1
#     with `slurmd -N localhost`; proctrack/linuxproc (no cgroups in containers).
#   - No GPUs: a job asking for --gpus is refused (run the profile with CMKD_SLURM_GPUS=0), unless
#     CMKD_SLURM_FAKE_GPUS=N declares N GPUs of a gres without device files: Slurm then schedules
#     --gpus jobs and sets their SLURM_* GPU variables, but no process sees a real device (used
#     to check which jobs ask for a GPU, and that such a job never trains on the CPU).
set -euo pipefail

DIR=${CMKD_SLURM_DIR:-/tmp/cmkd-slurm}
CONF=$DIR/slurm.conf
MIN_JOB_AGE=${CMKD_SLURM_MIN_JOB_AGE:-600}
WAIT_S=${CMKD_SLURM_WAIT_S:-60}

log() { echo "[slurm_local] $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() {  # pid_alive FILE NAME: the PID in FILE is a running process called NAME
    local f=$1 name=$2 pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] && [[ $(</proc/$pid/comm) == "$name" ]]
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

need_tools() {
    local missing=()
    for t in munged slurmctld slurmd sbatch srun squeue sinfo scontrol; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || die "missing ${missing[*]}: apt-get install slurmctld slurmd slurm-client munge"
    [[ $(id -u) == 0 ]] || die "must run as root (the daemons run as root; munged as user munge)"
    id munge >/dev/null 2>&1 || die "no user munge (install the munge package)"
}

node_state() { SLURM_CONF=$CONF sinfo -h -n localhost -o %t 2>/dev/null | sed -n 1p || true; }

write_conf() {
    local cpus_line mem ctld_port slurmd_port
    # slurmd -C: "NodeName=x CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    cpus_line=$(slurmd -C | sed -n 1p | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
    mem=$(slurmd -C | sed -n 1p | tr ' ' '\n' | sed -n 's/^RealMemory=//p')
    mem=$((mem * 9 / 10))   # below the reported memory, or the node is INVAL
    local gres_line="" gres_types=""
    if [[ ${CMKD_SLURM_FAKE_GPUS:-0} -gt 0 ]]; then
        gres_types="GresTypes=gpu"
        gres_line="Gres=gpu:${CMKD_SLURM_FAKE_GPUS} "
        printf 'AutoDetect=off\nNodeName=localhost Name=gpu File=/dev/null Count=%s\n' "$CMKD_SLURM_FAKE_GPUS" >"$DIR/gres.conf"
    else
        rm -f "$DIR/gres.conf"
    fi
    ctld_port=${CMKD_SLURM_CTLD_PORT:-$(free_port)}
    slurmd_port=${CMKD_SLURM_SLURMD_PORT:-$(free_port)}
    cat >"$CONF" <<EOF
# written by scripts/slurm_local.sh: a one-node cluster on localhost
ClusterName=cmkd
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=$MIN_JOB_AGE
$gres_types
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 ${cpus_line}${gres_line}RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
    pid_alive "$DIR/munge/munged.pid" munged && return 0
    install -d -m 0755 -o munge -g munge "$DIR/munge"  # clients need x on the socket directory
    if [[ ! -s $DIR/munge/munge.key ]]; then
        head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
    fi
    chown munge:munge "$DIR/munge/munge.key"
    chmod 0400 "$DIR/munge/munge.key"
    runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    for _ in $(seq 50); do pid_alive "$DIR/munge/munged.pid" munged && return 0; sleep 0.1; done
    tail -n 5 "$DIR/munge/munged.log" >&2 || true; die "munged did not start"
}

cmd_up() {
    need_tools
    if [[ -s $CONF ]] && pid_alive "$DIR/slurmctld.pid" slurmctld && pid_alive "$DIR/slurmd.pid" slurmd \
        && [[ $(node_state) == idle* || $(node_state) == mix* || $(node_state) == alloc* ]]; then
        log "already up (SLURM_CONF=$CONF)"
        return 0
    fi
    cmd_down --keep >/dev/null 2>&1 || true   # half-started leftovers of an earlier call
    mkdir -p "$DIR"/{state,spool,log}
    chmod 0755 "$DIR" "$DIR/log"
    runuser -u munge -- test -x "$DIR" || die "user munge cannot enter $DIR (a parent directory is not world-executable)"
    write_conf
    mkdir -p "$DIR/bin"
    printf '#!/bin/sh\nSLURM_CONF=%q exec %q "$@"\n' "$CONF" "$(command -v srun)" >"$DIR/bin/srun"
    chmod 0755 "$DIR/bin/srun"
    export SLURM_CONF=$CONF
    start_munged
    local t0=$SECONDS
    slurmctld -f "$CONF"
    slurmd -f "$CONF" -N localhost
    while true; do
        case $(node_state) in
            idle*) break ;;
            inval* | drain* | down*)
                # a node that came back after a restart stays down until resumed
                scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
        esac
        ((SECONDS - t0 < WAIT_S)) || { tail -n 5 "$DIR"/log/*.log >&2; die "node not idle after ${WAIT_S}s (state: $(node_state))"; }
        sleep 0.5
    done
    log "up in $((SECONDS - t0)) s: node localhost idle; $(cmd_env)"
}

stop_pidfile() {  # stop_pidfile FILE NAME
    local f=$1 name=$2 pid
    pid_alive "$f" "$name" || return 0
    pid=$(<"$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do [[ -d /proc/$pid ]] || return 0; sleep 0.1; done
    log "$name ($pid) ignores SIGTERM; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

cmd_down() {
    local keep=${1:-}
    [[ -d $DIR ]] || return 0
    if [[ -s $CONF ]] && pid_alive "$DIR/slurmctld.pid" slurmctld; then
        # end this cluster's jobs first, so that no job step outlives its slurmd
        SLURM_CONF=$CONF scancel --quiet --full --user=root >/dev/null 2>&1 || true
    fi
    stop_pidfile "$DIR/slurmd.pid" slurmd
    stop_pidfile "$DIR/slurmctld.pid" slurmctld
    stop_pidfile "$DIR/munge/munged.pid" munged
    if [[ $keep != --keep ]]; then
        rm -rf "$DIR"
        log "down; removed $DIR"
    fi
}

cmd_env() { echo "export SLURM_CONF=$CONF PATH=$DIR/bin:\$PATH"; }

cmd_status() {
    export SLURM_CONF=$CONF
    sinfo || true
    squeue --states=all -o "%.8i %.10T %.24j %k" || true
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down "${2:-}" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: $0 up|down|status|env   (state directory: \$CMKD_SLURM_DIR, default /tmp/cmkd-slurm)" >&2; exit 2 ;;
esac
