#!/usr/bin/env bash
# Stop the daemons that start-local-slurm.sh started, by their pid files (nothing else is touched).
#
#   tests/slurm/stop-local-slurm.sh [STATE_DIR]    # STATE_DIR: argument, else $OVGS_SLURM_DIR, else /tmp/ovgs-slurm
#
# The state folder is kept (job ids, the accounting database); `rm -rf STATE_DIR` afterwards for a clean slate.
# A munged that start-local-slurm.sh did not start (no pid file under STATE_DIR) is left running.
set -uo pipefail

DIR=${1:-${OVGS_SLURM_DIR:-/tmp/ovgs-slurm}}

# alive PID NAME: a live (not zombie: nothing reaps without an init) process whose command is NAME
alive() {
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop PIDFILE NAME: SIGTERM the process the file names (if it is NAME), wait up to 10 s, then SIGKILL
stop() {
  local pidfile=$1 name=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if alive "$pid" "$name"; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 40); do alive "$pid" "$name" || break; sleep 0.25; done
    alive "$pid" "$name" && kill -9 "$pid" 2>/dev/null
    echo "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
}

stop "$DIR/run/slurmd.pid" slurmd
stop "$DIR/run/slurmctld.pid" slurmctld
stop "$DIR/run/slurmdbd.pid" slurmdbd
stop "$DIR/mysql/mariadbd.pid" mariadbd
stop "$DIR/munge/munged.pid" munged
# the default-path link that start-local-slurm.sh made to our slurm.conf
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$DIR/etc/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
exit 0
