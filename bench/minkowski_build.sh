#!/usr/bin/env bash
# Attempt to build MinkowskiEngine 0.5.4 (the PyPI sdist, upstream unmaintained since 2023) for the GPU node's torch
# and CUDA, with the patches the field uses: collections.abc for Python >= 3.10 and explicit thrust includes for
# CUDA >= 12 (NVIDIA/MinkowskiEngine issues #543 / #594 / #601, PRs #567 / #607 / #626). OpenBLAS comes from Debian
# .deb files (the runtime library) and a tarball of its headers, unpacked under /tmp (no system install). Writes
# OUT_DIR/minkowski_build.log and prints the outcome.
# Usage: bench/minkowski_build.sh SRC_DIR OUT_DIR
#   SRC_DIR: MinkowskiEngine-0.5.4.tar.gz, libopenblas0-pthread*.deb, openblas-headers.tgz (usr/include of
#   libopenblas-pthread-dev)
set -u
src=$1; out=$2; mkdir -p "$out"; log="$out/minkowski_build.log"
ob=/tmp/openblas; mkdir -p "$ob"
for f in "$src"/libopenblas*.deb; do dpkg -x "$f" "$ob"; done
tar xzf "$src"/openblas-headers.tgz -C "$ob"
inc=$(dirname "$(find "$ob" -name cblas.h | head -1)")
lib=$(dirname "$(find "$ob" -name 'libopenblas*.so*' | head -1)")
ln -sf "$(find "$ob" -name 'libopenblas.so.0' | head -1)" "$lib/libopenblas.so" 2>/dev/null
rm -rf /tmp/MinkowskiEngine-0.5.4 && tar xzf "$src"/MinkowskiEngine-0.5.4.tar.gz -C /tmp
cd /tmp/MinkowskiEngine-0.5.4 || exit 1
grep -rl "from collections import Sequence" . | xargs -r sed -i 's/from collections import Sequence/from collections.abc import Sequence/'
for f in $(find src -name '*.cu' -o -name '*.cuh'); do
  sed -i '1i #include <thrust/execution_policy.h>\n#include <thrust/remove.h>\n#include <thrust/unique.h>\n#include <thrust/sort.h>' "$f"
done
echo "nvcc: $(nvcc --version | tail -1); torch $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)')" > "$log"
t0=$(date +%s)
LIBRARY_PATH="$lib:${LIBRARY_PATH:-}" LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}" MAX_JOBS=${MAX_JOBS:-8} \
  ${BUILD_TIMEOUT:+timeout $BUILD_TIMEOUT} python3 setup.py bdist_wheel --force_cuda --blas=openblas \
  --blas_include_dirs="$inc" --blas_library_dirs="$lib" >> "$log" 2>&1
rc=$?
echo "minkowski build: rc $rc after $(( $(date +%s) - t0 )) s" | tee -a "$log"
grep -n -m 15 -E "error|Error" "$log" | cut -c1-300
exit $rc
