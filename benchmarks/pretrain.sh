#!/usr/bin/env bash
# The exact training behind the ARCH.mai_builtin weights shipped in mai_sr/pretrained/
# (written down as mai_sr/pretrained/recipes/ARCH.mai_builtin.json; the weights made from
# published ones have only recipes), also the runs benchmarks/qat_quality.py measures.
#
#   benchmarks/pretrain.sh [MODEL ...]        # default: abpn ncnet scsrn xcat, one after another
#   WEIGHT_CLIP=off benchmarks/pretrain.sh    # the same without weight clipping (MODEL-noclip)
#   STEPS=2000 QAT_STEPS=300 PRETRAIN_OUT=DIR benchmarks/pretrain.sh   # another budget/folder
#
# Each model: FP32 on T91 + BSD200 (validation Set5, best checkpoint kept), collapse, QAT,
# with weight clipping on (the default), in benchmarks/out/pretrain/MODEL (XCAT: the last of
# four runs, see below; with STEPS set, one run like the others). Re-running the
# script continues an interrupted run from its last checkpoint (--resume) and skips finished
# ones. The shipped files were made on a 2-core machine with two queues, one per core:
#   taskset -c 0 benchmarks/pretrain.sh abpn ncnet &  taskset -c 1 benchmarks/pretrain.sh scsrn xcat
# then `python benchmarks/pretrained_table.py --measure ARCH.mai_builtin,... --ship` exported,
# measured and copied them.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MAI_SR_DATA:-../shared/data}
OUT=${PRETRAIN_OUT:-benchmarks/out/pretrain}
QAT_STEPS=${QAT_STEPS:-1000}  # QAT steps at the default 5e-5
# FP32 steps (batch 16, LR patch 48, Adam 1e-3 cosine, 5% warm-up; STEPS=N overrides all):
# 10000, but 24000 for XCAT, which learns slower: at step 4000 of a 10000-step run it was
# 0.47 dB behind ABPN on Set5; it is also the fastest (9 steps/s vs 6-7.5 on a core).
fp32_steps() { if [[ -n "${STEPS:-}" ]]; then echo "$STEPS"; elif [[ $1 == xcat ]]; then echo 24000; else echo 10000; fi; }
case "${WEIGHT_CLIP:-on}" in
  on) suffix=""; clip_flag=() ;;
  off) suffix="-noclip"; clip_flag=(--no-weight-clip) ;;
  *) echo "WEIGHT_CLIP must be on or off" >&2; exit 2 ;;
esac
common=(--data "$DATA/T91,$DATA/BSD200" --val "$DATA/Set5" --patch 48 --batch 16
        "${clip_flag[@]}" --val-every 1000 --ckpt-every 500)
qat=(--qat --qat-steps "$QAT_STEPS")
# train RUN RESULT ARGS...: skip RUN if RESULT (a file in RUN) exists, resume RUN if started,
# else start it with the common arguments, then ARGS (which override them).
train() {
  local run=$1 result=$2; shift 2
  if [[ -f "$run/$result" ]]; then echo "$run: finished"; return; fi
  if [[ -d "$run" ]]; then mai-sr train --out "$run" --resume --quiet
  else mai-sr train "${common[@]}" "$@" --out "$run" --quiet; fi
}
mkdir -p "$OUT"
for m in ${@:-abpn ncnet scsrn xcat}; do
  if [[ $m == xcat && -z "${STEPS:-}" ]]; then
    # XCAT, the smallest, gets three more FP32 stages (--init: each starts from the previous
    # one's FP32 weights, with a new seed, validated on Set5 + Set14): warm restarts at 5e-4
    # and 3e-4, then L2 at 1e-4 (Aselsan's second stage). Only the last one is quantized.
    # B100 FP32 gain over bicubic after each stage: +1.175, +1.190, +1.198, +1.213 dB (INT8 +1.205).
    both=(--val "$DATA/Set5,$DATA/Set14")
    train "$OUT/xcat-base$suffix" fp32/train.weights.h5 --model xcat --steps "$(fp32_steps xcat)" --seed 0
    train "$OUT/xcat-restart$suffix" fp32/train.weights.h5 --init "$OUT/xcat-base$suffix" \
      --steps 12000 --lr 5e-4 --seed 1 "${both[@]}"
    train "$OUT/xcat-restart2$suffix" fp32/train.weights.h5 --init "$OUT/xcat-restart$suffix" \
      --steps 10000 --lr 3e-4 --seed 2 "${both[@]}"
    train "$OUT/xcat$suffix" qat/qat.weights.h5 --init "$OUT/xcat-restart2$suffix" \
      --steps 8000 --lr 1e-4 --loss l2 --seed 3 "${both[@]}" "${qat[@]}"
  else
    train "$OUT/$m$suffix" qat/qat.weights.h5 --model "$m" --steps "$(fp32_steps "$m")" --seed 0 "${qat[@]}"
  fi
done
