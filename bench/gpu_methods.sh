#!/usr/bin/env bash
# Every method bench on one shared benchmark room, on a GPU node: the room's scene and RGB Gaussians are trained
# once (bench/room.py), then each (method bench, corruption level) runs as its own process reusing them, spread
# round-robin over the visible GPUs. Usage: bench/gpu_methods.sh OUT_DIR LEVELS METHOD_BENCH[:LEVELS]...
#   e.g. bench/gpu_methods.sh /tmp/out clean ccl saga protosaga openins
#        bench/gpu_methods.sh /tmp/out clean ccl:moderate,strong protosaga   (per-bench levels after a colon)
# EXTRA_<bench>="..." adds arguments to one bench's command (e.g. EXTRA_ccl="--query-latency").
# ROOM_OPTIONS='{...}' (JSON, the whole room as bench.common.GPU_ROOM spells it) is another synthetic room than the
# default, e.g. GPU_ROOM with "seed": 1: given to the room and to every bench job as --scene-options, so each CSV
# row names the room it ran on.
# Several processes sharing one GPU inflate each other's stage times: the CSVs record the GPU count and the
# number of concurrent processes per GPU ("concurrent" column) so rows can be read accordingly.
set -euo pipefail
out=$1; levels=$2; shift 2
mkdir -p "$out"
room=results/bench_room
room_args=(); [[ -n ${ROOM_OPTIONS:-} ]] && room_args=(--scene-options "$ROOM_OPTIONS")
python3 -m bench.room --work "$room" --gs-iterations "${GS_ITERATIONS:-15000}" "${room_args[@]}" \
  --out "$out/room.csv" > "$out/room.log" 2>&1
ngpu=$(python3 -c "import torch; print(max(torch.cuda.device_count(), 1))")
IFS=, read -ra visible <<< "${CUDA_VISIBLE_DEVICES:-}"  # the caller's GPUs (a SLURM allocation): keep to them
jobs=()
for spec in "$@"; do
  m=${spec%%:*}; own=$levels; [[ $spec == *:* ]] && own=${spec#*:}
  for l in ${own//,/ }; do jobs+=("$m:$l"); done
done
threads=$(( $(nproc) / ${#jobs[@]} )); threads=$(( threads > 0 ? threads : 1 ))  # no CPU oversubscription
i=0
for job in "${jobs[@]}"; do
  m=${job%%:*}; l=${job##*:}
  work=results/bench_${m}_${l}
  mkdir -p "$work"
  ln -sfn "$(realpath $room/scene.zarr)" "$work/scene.zarr"
  ln -sfn "$(realpath $room/train_gs.zarr)" "$work/train_gs.zarr"
  extra_var="EXTRA_${m}"
  gpu=$(( i % ngpu )); on_gpu=$(( (${#jobs[@]} - gpu + ngpu - 1) / ngpu ))  # jobs sharing this one's GPU
  OMP_NUM_THREADS=$threads CUDA_VISIBLE_DEVICES=${visible[$gpu]:-$gpu} BENCH_CONCURRENT=$on_gpu python3 -m bench."$m" --levels "$l" \
    --work "$work" --reuse-gaussians "${room_args[@]}" --out "$out/${m}_${l}.csv" ${!extra_var:-} > "$out/${m}_${l}.log" 2>&1 &
  i=$((i + 1))
done
status=0
for p in $(jobs -p); do wait "$p" || status=1; done
exit $status
