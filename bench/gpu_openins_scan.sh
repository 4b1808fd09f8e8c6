#!/usr/bin/env bash
# OpenInsGaussian on the hard rooms (bench/openins_scan.py) on one GPU node: one room per visible GPU (round-robin),
# each running the recipe at LEVELS, then every named setting on that run's fields (codebook onwards only). Usage:
#   bench/gpu_openins_scan.sh OUT_DIR SEEDS LEVELS [NAME=STAGE_PARAMS_JSON ...]
#   e.g. bench/gpu_openins_scan.sh /tmp/out 1,2 clean,strong 'plane1cm={"codebook": {"smooth_plane_tol": 0.01}}'
# Rows: OUT_DIR/oi_s<seed>.csv and OUT_DIR/oi_s<seed>_<name>.csv (each with its _classes.csv), logs beside them.
# METHOD=recipe (default openins_scannet) for every run; REUSE_STAGES=masks,...,pseudo_gt: the stores the settings
# take from the recipe's run (default: up to the contrastive field, so the codebook onwards runs); SETTING_LEVELS:
# the levels the settings run on (default LEVELS); BENCH_TIMEOUT=SECONDS stops each room's chain after that long (a
# setting's CSV is rewritten after every level, so a stopped chain keeps what it finished).
set -euo pipefail
out=$1; seeds=$2; levels=$3; shift 3
mkdir -p "$out"
ngpu=$(python3 -c "import torch; print(max(torch.cuda.device_count(), 1))")
IFS=, read -ra visible <<< "${CUDA_VISIBLE_DEVICES:-}"  # the caller's GPUs (a SLURM allocation): keep to them
IFS=, read -ra rooms <<< "$seeds"
threads=$(( $(nproc) / ${#rooms[@]} )); threads=$(( threads > 0 ? threads : 1 ))
stop=${BENCH_TIMEOUT:+timeout $BENCH_TIMEOUT}
chain() {  # one room: the recipe, then each setting on its fields
  local s=$1; shift
  python3 -m bench.openins_scan --method "$METHOD" --seeds "$s" --levels "$levels" --out "$out/oi_s$s.csv" > "$out/oi_s$s.log" 2>&1
  for setting in "$@"; do
    local name=${setting%%=*}
    python3 -m bench.openins_scan --method "$METHOD" --seeds "$s" --levels "${SETTING_LEVELS:-$levels}" \
      --reuse-gaussians --reuse-features "" --run-name "$name" \
      ${REUSE_STAGES:+--reuse-stages "$REUSE_STAGES"} \
      --stage-params "${setting#*=}" --out "$out/oi_s${s}_$name.csv" > "$out/oi_s${s}_$name.log" 2>&1
  done
}
export -f chain
export out levels METHOD=${METHOD:-openins_scannet}
i=0
for s in "${rooms[@]}"; do
  gpu=$(( i % ngpu )); on_gpu=$(( (${#rooms[@]} - gpu + ngpu - 1) / ngpu ))  # rooms sharing this one's GPU
  OMP_NUM_THREADS=$threads CUDA_VISIBLE_DEVICES=${visible[$gpu]:-$gpu} BENCH_CONCURRENT=$on_gpu \
    $stop bash -c 'chain "$@"' chain "$s" "$@" &
  i=$((i + 1))
done
status=0
for p in $(jobs -p); do wait "$p" || status=1; done
exit $status
