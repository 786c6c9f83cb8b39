#!/usr/bin/env bash
# A single-node Slurm cluster on 127.0.0.1 for htsr's tests (Debian's slurm-wlm + munge).
#
#   tests/slurm/cluster.sh start   # install if missing, start munged/slurmctld/slurmd, wait idle
#   tests/slurm/cluster.sh stop    # kill, by pid file, every daemon this script started
#   tests/slurm/cluster.sh status  # sinfo
#
# The configuration is written to $HTSR_SLURM_DIR/slurm.conf and linked from /etc/slurm/slurm.conf,
# Slurm's default path: the Snakemake job-step plugin strips SLURM_CONF (all SLURM_* variables)
# from the environment of the `srun` it runs inside each batch job, so a config reachable only
# through SLURM_CONF is not enough. An /etc/slurm/slurm.conf that is not this link is never touched
# (start fails instead), and `stop` removes the link.
#
# Environment: HTSR_SLURM_DIR (state, logs, pid files; default /tmp/htsr-slurm),
# HTSR_SLURM_CTLD_PORT / HTSR_SLURM_SLURMD_PORT (default 6817 / 6818).
# Exit codes: 0 ok, 1 the cluster did not come up, 2 usage, 3 cannot install (not root / no apt).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${HTSR_SLURM_DIR:-/tmp/htsr-slurm}"
CONF="$DIR/slurm.conf"
PIDS="$DIR/pid"
SYSTEM_CONF=/etc/slurm/slurm.conf
MUNGE_PID_FILE=/run/munge/munged.pid

log() { echo "cluster.sh: $*" >&2; }

alive() { # alive PIDFILE -> 0 when the file names a running process
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return 0
    fi
    if [[ $EUID -ne 0 ]]; then
        log "Slurm/munge are not installed and installing them needs root (uid is $EUID)"
        exit 3
    fi
    if ! command -v apt-get >/dev/null; then
        log "Slurm/munge are not installed and apt-get is missing"
        exit 3
    fi
    log "installing slurm-wlm and munge with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        slurm-wlm munge; } >"$DIR/log/apt.log" 2>&1; then
        log "apt-get install slurm-wlm munge failed; see $DIR/log/apt.log:"
        tail -n 20 "$DIR/log/apt.log" >&2
        exit 3
    fi
}

write_conf() {
    local node cpus mem_kb mem_mb
    node="$(hostname -s)"
    cpus="$(getconf _NPROCESSORS_ONLN)" # not nproc: it honours OMP_NUM_THREADS
    mem_kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    # slurmd drains a node whose configured RealMemory exceeds what it finds; leave 10 % spare.
    mem_mb=$((mem_kb / 1024 * 9 / 10))
    sed -e "s|@NODE@|$node|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g" \
        -e "s|@STATE_DIR@|$DIR|g" \
        -e "s|@CTLD_PORT@|${HTSR_SLURM_CTLD_PORT:-6817}|g" \
        -e "s|@SLURMD_PORT@|${HTSR_SLURM_SLURMD_PORT:-6818}|g" \
        "$HERE/slurm.conf.in" >"$CONF.tmp"
    mv -f "$CONF.tmp" "$CONF"
    log "wrote $CONF (node $node, $cpus CPUs, RealMemory $mem_mb MB)"
    # Replace only a link of ours: to $CONF, to a vanished file, or to another htsr-test config
    # (left by a run that was killed before `stop`).
    local target
    target="$(readlink "$SYSTEM_CONF" || true)"
    if [[ -e "$SYSTEM_CONF" || -L "$SYSTEM_CONF" ]] && [[ "$target" != "$CONF" ]]; then
        if [[ ! -L "$SYSTEM_CONF" ]] ||
            { [[ -e "$SYSTEM_CONF" ]] && ! grep -q '^ClusterName=htsr-test$' "$SYSTEM_CONF"; }; then
            log "$SYSTEM_CONF exists and is not htsr's test link; not overwriting a Slurm config"
            return 1
        fi
        log "replacing the stale link $SYSTEM_CONF -> $target"
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$CONF" "$SYSTEM_CONF"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running; using it (not started by this script, will not stop it)"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        install -d -o munge -g munge -m 0700 /etc/munge
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID_FILE"
    cp "$MUNGE_PID_FILE" "$PIDS/munged.pid"
    for _ in $(seq 50); do
        if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
            log "munged up (pid $(cat "$PIDS/munged.pid"))"
            return 0
        fi
        sleep 0.1
    done
    log "munged did not answer; see /var/log/munge/munged.log"
    return 1
}

wait_idle() {
    local state=""
    for _ in $(seq 120); do
        state="$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)"
        if [[ "$state" == "idle" ]]; then
            log "node $(hostname -s) is idle"
            return 0
        fi
        sleep 0.5
    done
    log "node did not become idle within 60 s (last state: '${state:-no answer}')"
    return 1
}

dump_logs() {
    for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        [[ -f "$f" ]] && {
            log "--- tail $f"
            tail -n 30 "$f" >&2
        }
    done
}

do_start() {
    mkdir -p "$DIR/log" "$PIDS" "$DIR/ctld" "$DIR/spool"
    install_packages
    if alive "$PIDS/slurmctld.pid" || alive "$PIDS/slurmd.pid"; then
        log "a cluster from $DIR is already running; stop it first"
        exit 1
    fi
    write_conf || exit 1
    start_munge || {
        do_stop
        exit 1
    }
    # Both daemons fork and write the pid files named in slurm.conf. -c: start from a clean state.
    if ! slurmctld -c -f "$CONF" || ! slurmd -c -f "$CONF" || ! wait_idle; then
        dump_logs
        do_stop
        exit 1
    fi
    log "cluster up; Slurm clients read $SYSTEM_CONF -> $CONF"
}

stop_pidfile() { # stop_pidfile NAME: TERM, then KILL after 10 s, the pid in $PIDS/NAME.pid
    local file="$PIDS/$1.pid" pid
    [[ -s "$file" ]] || return 0
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$1 (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $1 (pid $pid)"
    fi
    rm -f "$file"
}

do_stop() {
    # Jobs still running under slurmd are its children's children: cancel them first.
    if alive "$PIDS/slurmctld.pid"; then
        SLURM_CONF="$CONF" scancel --full --user "$(id -un)" 2>/dev/null || true
    fi
    stop_pidfile slurmd
    stop_pidfile slurmctld
    stop_pidfile munged
    if [[ "$(readlink "$SYSTEM_CONF" 2>/dev/null || true)" == "$CONF" ]]; then
        rm -f "$SYSTEM_CONF"
    fi
}

case "${1:-}" in
start) do_start ;;
stop) do_stop ;;
status) sinfo -N ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
