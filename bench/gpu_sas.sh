#!/usr/bin/env bash
# SAS benches on one GPU node as parallel processes (each builds its own 150-view room; the CPU-bound evaluations
# use the node's cores side by side): bench.sas (2D fusion rows) at LEVELS_2D, and bench.sas3d with one Table 3 row
# per process (the method's own row, superpoint + TESD, also times the other backends). Usage:
#   bench/gpu_sas.sh OUT_DIR [LEVELS_2D]        e.g. bench/gpu_sas.sh /tmp/out strong
# Rows: OUT_DIR/sas.csv and OUT_DIR/sas3d_<row>.csv (+ .partial.csv of a process stopped early); logs beside them.
# BENCH_TIMEOUT=SECONDS stops every process after that long; DIFFUSION_SPEED=full|tiny adds bench.sas's SD timing.
set -euo pipefail
out=$1; levels=${2:-clean moderate strong}
mkdir -p "$out"
rows=("superpoint + TESD" "superpoint" "pixel-point")
n=$(( ${#rows[@]} + 1 ))
threads=$(( $(nproc) / n )); threads=$(( threads > 0 ? threads : 1 ))
export OMP_NUM_THREADS=$threads BENCH_CONCURRENT=$n
stop=${BENCH_TIMEOUT:+timeout $BENCH_TIMEOUT}
$stop python3 -m bench.sas --levels $levels ${DIFFUSION_SPEED:+--diffusion-speed $DIFFUSION_SPEED} --work /tmp/ovgs_bench_sas --out "$out/sas.csv" > "$out/sas.log" 2>&1 &
for r in "${rows[@]}"; do
  tag=${r//[^a-zA-Z]/_}
  backends=spconv; [[ $r == "superpoint + TESD" ]] && backends="spconv torch"
  $stop python3 -m bench.sas3d --rows "$r" --backends $backends --work "/tmp/ovgs_bench_sas3d_$tag" \
    --out "$out/sas3d_$tag.csv" > "$out/sas3d_$tag.log" 2>&1 &
done
status=0
for p in $(jobs -p); do wait "$p" || status=1; done
exit $status
