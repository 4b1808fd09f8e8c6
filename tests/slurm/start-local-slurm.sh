#!/usr/bin/env bash
# Start a real single-node SLURM cluster on localhost for the SLURM tests and CI (Debian 12, root, no systemd).
#
#   tests/slurm/start-local-slurm.sh [STATE_DIR]    # STATE_DIR: argument, else $OVGS_SLURM_DIR, else /tmp/ovgs-slurm
#   export SLURM_CONF=STATE_DIR/etc/slurm.conf        # optional for clients (the default path links to it)
#   tests/slurm/stop-local-slurm.sh [STATE_DIR]
#
# Brings up munged, mariadbd + slurmdbd (accounting, so `sacct` and the executor's default status check work),
# slurmctld and slurmd with FAKE_GPUS (default 2) fake GPUs as GRES (character devices aliasing /dev/null, so
# `sbatch --gpus=1` schedules and the job sees CUDA_VISIBLE_DEVICES). One partition `debug`, account `root`.
# Idempotent: daemons that already run (by their pid files) are left alone; packages already installed are not
# installed again. Everything lives under STATE_DIR (configs, spool, job state, database, logs, pid files) except
# munge's key and socket (/etc/munge, /run/munge), which the munge client library insists on, and the link
# /etc/slurm/slurm.conf -> STATE_DIR/etc/slurm.conf, which srun inside a job insists on (see below).
#
# Exit codes: 2 not root, 3 package installation failed, 4 a daemon did not come up (its log tail is printed).
set -euo pipefail

DIR=${1:-${OVGS_SLURM_DIR:-/tmp/ovgs-slurm}}
FAKE_GPUS=${FAKE_GPUS:-2}
DB_PORT=${OVGS_SLURM_DB_PORT:-13306}     # private mariadbd on 127.0.0.1 (not the system's 3306)
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"

die() { code=$1; shift; echo "start-local-slurm: $*" >&2; exit "$code"; }
log_tail() { for f in "$@"; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done; return 0; }
# alive PIDFILE NAME: the pid file names a live (not zombie) process whose command is NAME (guards against pid reuse;
# without an init that reaps, a dead daemon stays a zombie under pid 1)
alive() {
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}
# wait_for TRIES COMMAND...: retry COMMAND every 0.25 s until it succeeds
wait_for() {
  local tries=$1; shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}

[ "$(id -u)" = 0 ] || die 2 "must run as root (installs packages, starts daemons as root)"
mkdir -p "$DIR"/{etc,state,spool,log,run,munge,mysql}
chmod 755 "$DIR"     # mysql and munge users need to reach their folders

# --- packages ----------------------------------------------------------------------------------------------------
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "start-local-slurm: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES; } >"$DIR/log/apt.log" 2>&1 \
    || { log_tail "$DIR/log/apt.log"; die 3 "apt-get install failed (log: $DIR/log/apt.log)"; }
fi

export SLURM_CONF="$DIR/etc/slurm.conf"
H=$(hostname -s)

# --- munge (the Debian package generated /etc/munge/munge.key) ---------------------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  chown munge:munge "$DIR/munge"
  runuser -u munge -- /usr/sbin/munged --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    || { log_tail "$DIR/munge/munged.log"; die 4 "munged did not start"; }
  wait_for 40 sh -c 'munge -n | unmunge' || { log_tail "$DIR/munge/munged.log"; die 4 "munge does not answer"; }
fi

# --- accounting database: a private mariadbd with its data under $DIR/mysql ---------------------------------------
SQL=(mariadb --no-defaults --socket="$DIR/mysql/mysqld.sock" -u root)
if ! alive "$DIR/mysql/mariadbd.pid" mariadbd; then
  chown mysql:mysql "$DIR/mysql"
  if [ ! -d "$DIR/mysql/data/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 \
      || { log_tail "$DIR/log/mariadb-install.log"; die 4 "mariadb-install-db failed"; }
  fi
  # the daemon forks off this shell; its pid file is its own
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql/data" \
    --socket="$DIR/mysql/mysqld.sock" --pid-file="$DIR/mysql/mariadbd.pid" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --log-error="$DIR/log/mariadb.log" --skip-log-bin \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M </dev/null >/dev/null 2>&1 &
fi
wait_for 120 "${SQL[@]}" -e 'select 1' || { log_tail "$DIR/log/mariadb.log"; die 4 "mariadbd did not come up"; }
"${SQL[@]}" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-local-ci';
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-local-ci';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

# --- configuration (slurmdbd.conf and gres.conf are found next to $SLURM_CONF) ------------------------------------
cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm-local-ci
StorageLoc=slurm_acct_db
EOF
chmod 600 "$DIR/etc/slurmdbd.conf"     # slurmdbd refuses a readable one

GRES_NODE=""; GRES_TYPES=""
: >"$DIR/etc/gres.conf"
if [ "$FAKE_GPUS" -gt 0 ]; then
  for i in $(seq 0 $((FAKE_GPUS - 1))); do
    [ -c "$DIR/fakegpu$i" ] || mknod -m 666 "$DIR/fakegpu$i" c 1 3     # slurmd wants character devices
  done
  echo "Name=gpu File=$DIR/fakegpu[0-$((FAKE_GPUS - 1))]" >"$DIR/etc/gres.conf"
  GRES_NODE="Gres=gpu:$FAKE_GPUS"; GRES_TYPES="GresTypes=gpu"
fi

MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))
cat >"$DIR/etc/slurm.conf" <<EOF
# Written by tests/slurm/start-local-slurm.sh: one node, one partition, accounting through slurmdbd.
ClusterName=localci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobCompType=jobcomp/none
ReturnToService=2
DefMemPerCPU=1024
# finished jobs stay visible to squeue for an hour (lets --slurm-status-command squeue work too)
MinJobAge=3600
# scancel: SIGTERM, then SIGKILL after 5 s instead of 30
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
$GRES_TYPES
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF

# The in-job `srun` of snakemake-executor-plugin-slurm-jobstep (0.6.1) drops every SLURM_* variable but a few job ids,
# SLURM_CONF included, so it reads the default /etc/slurm/slurm.conf: link that to ours. A real file there belongs to
# another SLURM set-up; leave it alone and refuse.
if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
  die 4 "/etc/slurm/slurm.conf exists and is not our link; this machine has its own SLURM configuration"
fi
mkdir -p /etc/slurm && ln -sfn "$DIR/etc/slurm.conf" /etc/slurm/slurm.conf

cat >"$DIR/env.sh" <<EOF
export SLURM_CONF=$DIR/etc/slurm.conf
EOF

# --- daemons ---------------------------------------------------------------------------------------------------
if ! alive "$DIR/run/slurmdbd.pid" slurmdbd; then
  /usr/sbin/slurmdbd || { log_tail "$DIR/log/slurmdbd.log"; die 4 "slurmdbd did not start"; }
fi
wait_for 80 bash -c 'echo >/dev/tcp/127.0.0.1/6819' \
  || { log_tail "$DIR/log/slurmdbd.log"; die 4 "slurmdbd does not listen"; }
if ! alive "$DIR/run/slurmctld.pid" slurmctld; then
  /usr/sbin/slurmctld || { log_tail "$DIR/log/slurmctld.log"; die 4 "slurmctld did not start"; }
fi
if ! alive "$DIR/run/slurmd.pid" slurmd; then
  /usr/sbin/slurmd || { log_tail "$DIR/log/slurmd.log"; die 4 "slurmd did not start"; }
fi
node_idle() { sinfo -h -N -o %T | grep -Eqx 'idle|mixed|allocated'; }
if ! wait_for 120 node_idle; then
  scontrol update NodeName="$H" State=RESUME >/dev/null 2>&1 || true       # e.g. DOWN after an unclean stop
  wait_for 40 node_idle \
    || { sinfo -N -l >&2; log_tail "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; die 4 "node not idle"; }
fi
# slurmctld registers the cluster and the root account in slurmdbd on its own; wait until sacct answers
wait_for 80 sacct -n -X -S now-1minutes || { log_tail "$DIR/log/slurmdbd.log"; die 4 "sacct does not answer"; }
srun -t 1 -J ovgs-smoke true \
  || { log_tail "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; die 4 "srun smoke test failed"; }
echo "local SLURM up: SLURM_CONF=$SLURM_CONF partition=debug node=$H cpus=$(nproc) mem=${MEM}M gpus=$FAKE_GPUS"
