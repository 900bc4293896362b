#!/usr/bin/env bash
# The GPU path, measured, in under 8 minutes on one H200 (README: "The GPU path"):
#  (a) bench/gpu_pretrain.py: the SSTL step on R3D-18 at 16x112x112 in bf16, with and without
#      channels-last and torch.compile: clips/s, MFU, peak memory;
#  (b) bench/gpu_loader.py: loader-fed pretraining (`sstl pretrain`) from a frame store of
#      Kinetics-like videos of mixed aspect ratios, with 4, 8 and 16 loader workers: the fraction of
#      step time the GPU waits on data. While training cannot batch mixed frame sizes (issue 9) the
#      mixed run fails at its first batch; the numbers then come from a 4:3-only store, and the
#      summary says so;
#  (c) two DDP ranks through torchrun with NCCL (the training code's process group): one GPU per
#      rank where there are two; NCCL refuses two ranks on one GPU, and the summary says so.
#
#   bash bench/gpu_check.sh [--device cpu] [--out DIR]
#
# --device cpu runs the same steps at smoke sizes (r3d_tiny, tiny frames, no torch.compile: it
# builds C++ kernels for minutes on a CPU) in about two minutes; tests/bench/test_gpu_check.py runs
# it. Results: DIR (default gpu_check_out/): a.json per variant, b.json, c.json, summary.txt.
# PyAV is missing on the lent GPU machine: bench/device_wheels.sh downloads its wheel into .whl/
# here, and this script installs .whl/*.whl into /tmp/site when the folder is there.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
OUT=gpu_check_out
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--device cuda|cpu] [--out DIR]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
failed=0
start=$(date +%s)

if [ "$DEVICE" = cpu ]; then
  A=(--device cpu --arch r3d_tiny --batch 2 --steps 2 --warmup 1 --crop 32 --height 40 --width 52)
  A_VARIANTS=("" "--channels-last")
  B=(--device cpu --smoke --arch r3d_tiny --videos 8 --batch 2 --steps 6 --warmup 1 --workers 1 2)
  C=(--device cpu --arch r3d_tiny --batch 2 --steps 2 --warmup 1 --crop 32 --height 40 --width 52)
  LIMIT_A=120 LIMIT_COMPILE=120 LIMIT_B=300 LIMIT_C=120
else
  A=(--device cuda --arch r3d_18 --batch 32 --steps 15 --warmup 5)
  A_VARIANTS=("" "--channels-last" "--compile" "--channels-last --compile")
  B=(--device cuda --arch r3d_18 --videos 384 --batch 32 --steps 48 --warmup 8 --workers 4 8 16)
  C=(--device cuda --arch r3d_18 --batch 32 --steps 15 --warmup 5)
  LIMIT_A=60 LIMIT_COMPILE=110 LIMIT_B=150 LIMIT_C=50
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' | tee -a "$SUMMARY"

say "== (a) model throughput: SSTL step, bf16, channels-last / torch.compile"
for v in "${A_VARIANTS[@]}"; do
  name=a$(echo "$v" | tr -d ' -' | sed 's/^$/_plain/; s/^\([^_]\)/_\1/')
  limit=$LIMIT_A
  [[ $v == *compile* ]] && limit=$LIMIT_COMPILE
  # shellcheck disable=SC2086  # $v: zero, one or two flags
  if ! timeout -k 10 "$limit" "$PY" bench/gpu_pretrain.py "${A[@]}" $v --json "$OUT/$name.json" \
      > "$OUT/$name.log" 2>&1; then
    say "   ${v:-plain}: FAILED or over ${limit} s (tail of $OUT/$name.log):"
    tail -n 5 "$OUT/$name.log" | tee -a "$SUMMARY"
    failed=1
  else
    say "   $(grep -E 'clips/s' "$OUT/$name.log" | tail -n 1)"
    "$PY" -c 'import json, sys; m = json.load(open(sys.argv[1]))["peak_mem_gib"]
print("   peak memory %.1f GiB" % m if m else "   (no GPU memory on a CPU)")' \
      "$OUT/$name.json" | tee -a "$SUMMARY"
  fi
done

say "== (b) loader-fed pretraining from a frame store: GPU time waiting on data"
b_start=$(date +%s)
if timeout -k 10 "$LIMIT_B" "$PY" bench/gpu_loader.py "${B[@]}" --aspect mixed \
    --work "$OUT/work" --json "$OUT/b.json" > "$OUT/b.log" 2>&1; then
  grep -E 'store|workers:' "$OUT/b.log" | tee -a "$SUMMARY"
else
  logs=("$OUT/work"/run-mixed-*/pretrain.log "$OUT/b.log")
  why=$(grep -h -m1 -o 'stack expects.*' "${logs[@]}" 2>/dev/null | head -n 1)
  [ -n "$why" ] || why=$(grep -h -m1 -oE '[A-Za-z]*Error: .*' "${logs[@]}" 2>/dev/null | head -n 1)
  say "   mixed aspect ratios FAILED: ${why:0:300}"
  left=$(( LIMIT_B - ($(date +%s) - b_start) ))
  if [ $left -gt 20 ] && timeout -k 10 "$left" "$PY" bench/gpu_loader.py "${B[@]}" --aspect 4:3 \
      --work "$OUT/work" --json "$OUT/b.json" > "$OUT/b43.log" 2>&1; then
    say "   numbers from a 4:3-only store instead:"
    grep -E 'store|workers:' "$OUT/b43.log" | tee -a "$SUMMARY"
  else
    say "   4:3-only store FAILED too (tail of $OUT/b43.log):"
    tail -n 5 "$OUT/b43.log" 2>/dev/null | tee -a "$SUMMARY"
    failed=1
  fi
fi

say "== (c) DDP: two ranks through torchrun ($( [ "$DEVICE" = cpu ] && echo gloo || echo NCCL ))"
gpus=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
if timeout -k 10 "$LIMIT_C" "$PY" -m torch.distributed.run --standalone --nproc-per-node=2 \
    bench/gpu_pretrain.py "${C[@]}" --json "$OUT/c.json" > "$OUT/c.log" 2>&1; then
  say "   $(grep -E 'clips/s' "$OUT/c.log" | tail -n 1)"
elif [ "$DEVICE" = cuda ] && [ "$gpus" -lt 2 ]; then
  say "   not possible here: $gpus GPU, and NCCL refuses two ranks on one GPU:"
  say "   $(grep -m1 -iE 'duplicate gpu|nccl.*(error|invalid)' "$OUT/c.log" | head -c 300)"
else
  say "   FAILED (tail of $OUT/c.log):"
  tail -n 8 "$OUT/c.log" | tee -a "$SUMMARY"
  failed=1
fi

say "== gpu_check: $(( $(date +%s) - start )) s, results in $OUT"
exit $failed
