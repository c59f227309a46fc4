#!/usr/bin/env bash
# Train the shipped models on ../shared/data with crossnet-fast train (issue 7), on this machine's GPUs.
#
#   bash scripts/train_gpu.sh check     # ~3-4 min: CUDA/bf16/channels_last/NCCL smoke, it/s, exact resume
#   bash scripts/train_gpu.sh train     # the training pipeline below (hours; re-run to resume)
#
# Pipeline ("train"), each stage a folder under $TRAIN_OUT, skipped when its model.safetensors exists
# and resumed from its checkpoints when interrupted (Ctrl-C / SIGTERM / time limit save one):
#   1. mdsr_x4, mdsr_x8   the MDSR baseline (model.name="sisr"; same data, same recipe: a fair comparison)
#   2. synthetic_x4       CrossNet pretraining on synthetic pairs (HR warped by smooth flow + parallax)
#   3. crossnet_x4        real view pairs; starts from synthetic_x4, SISR front end from mdsr_x4
#   4. crossnet_x8        starts from crossnet_x4 (all but the SISR head), SISR front end from mdsr_x8
#   5. srcnn_x4/x8, vdsr_x4/x8 when BASELINES includes them
# Held out (never trained on): hci/antinous (validated at ref (0,0), LR (1,1) and (7,7)) and the
# Middlebury pairs Adirondack, Teddy, Vintage (configs/paper_x4.toml, [data]).
#
# Environment (defaults in brackets):
#   PYTHON [python]  NGPU [all visible]  TRAIN_OUT [out/train]
#   ITERS [20000] iterations per CrossNet stage (the paper: 200000; lr x0.1 at 3/4 of ITERS)
#   PRE_ITERS [5000] synthetic pretraining (0: skip)   SISR_ITERS [10000] per SISR baseline
#   BATCH [4] per GPU   CROP [256]   MAX_MINUTES [0] per stage (0: none; stop + checkpoint, re-run to go on)
#   BASELINES ["mdsr"] (add srcnn vdsr; CrossNet's SISR front end starts from mdsr_x4/x8 when present)
#   VAL_EVERY [2000]   CKPT_EVERY [1000]   EXTRA [""] more arguments for every stage
#   A CPU dry run of the whole pipeline (minutes):
#   NGPU=0 ITERS=2 PRE_ITERS=1 SISR_ITERS=1 CROP=64 BATCH=1 TRAIN_OUT=/tmp/dry \
#     EXTRA="--no-progress --set val.max_size=128 --set val.stereo=false" bash scripts/train_gpu.sh train
# Exit status: 0 when every stage finished; 3 when one stopped early (re-run to resume); else failure.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
MODE="${1:-train}"
OUTROOT="${TRAIN_OUT:-out/train}"
NGPU="${NGPU:-$("$PY" -c 'import torch; print(torch.cuda.device_count())')}"
ITERS="${ITERS:-20000}"; PRE_ITERS="${PRE_ITERS:-5000}"; SISR_ITERS="${SISR_ITERS:-10000}"
BATCH="${BATCH:-4}"; CROP="${CROP:-256}"; MAX_MINUTES="${MAX_MINUTES:-0}"
BASELINES="${BASELINES:-mdsr}"; VAL_EVERY="${VAL_EVERY:-2000}"; CKPT_EVERY="${CKPT_EVERY:-1000}"
# NGPU=0 runs on the CPU (a dry run of the pipeline with tiny ITERS/CROP; never for real training).
DEV=(); [ "$NGPU" -ge 1 ] || { echo "no CUDA device: running on the CPU"; DEV=(--device cpu); }
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"   # more crossnet-fast train arguments for every stage
mkdir -p "$OUTROOT"

launch() {  # launch ARGS...: one process per GPU under torchrun, or a plain process for one GPU
  if [ "$NGPU" -gt 1 ]; then
    "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NGPU" -m crossnet_fast train "$@"
  else
    "$PY" -m crossnet_fast train "${DEV[@]}" "$@"
  fi
}

stage() {  # stage NAME CONFIG ITERATIONS EXTRA_ARGS...: train (or resume) unless already finished
  local name="$1" config="$2" iters="$3"; shift 3
  local out="$OUTROOT/$name"
  if [ -f "$out/model.safetensors" ]; then echo "=== $name: done ($out/model.safetensors)"; return 0; fi
  local resume=()
  [ -f "$out/checkpoints/latest.json" ] && resume=(--resume "$out")
  echo "=== $name: $config, $iters iterations ${resume[*]:-}"
  launch --config "$config" --out "$out" --iterations "$iters" "${resume[@]}" \
    --set "optim.milestones=[$((iters * 3 / 4))]" --set "data.batch_size=$BATCH" \
    --set "data.crop=[$CROP, $CROP]" --set "run.max_minutes=$MAX_MINUTES" \
    --set "val.every=$VAL_EVERY" --set "run.checkpoint_every=$CKPT_EVERY" "${EXTRA_ARGS[@]}" "$@" 2>&1 | tee -a "$OUTROOT/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "=== $name failed (rc=$rc); re-run to resume"; exit "$rc"; }
  [ -f "$out/model.safetensors" ] || { echo "=== $name stopped early; re-run to resume"; exit 3; }
}

if [ "$MODE" = "check" ]; then
  [ "$NGPU" -ge 1 ] || { echo "check needs a CUDA device"; exit 1; }
  C="$OUTROOT/check"; rm -rf "$C"; mkdir -p "$C"
  nvidia-smi -L || true
  common=(--config paper_x4 --no-progress --set "data.batch_size=$BATCH" --set "data.crop=[$CROP, $CROP]"
          --set val.every=0 --set run.log_every=10 --set "val.views=[[0, 0, 1, 1]]" --set val.stereo=false)
  echo "=== 60 iterations, bf16 + channels_last (it/s in train.csv)"
  timeout 300 "$PY" -m crossnet_fast train "${common[@]}" --out "$C/speed" --iterations 60 \
    --set run.checkpoint_every=60 || exit 1
  tail -n 2 "$C/speed/train.csv"
  echo "=== exact resume on the GPU (deterministic kernels): 6 straight vs 3 + resume + 3"
  export CUBLAS_WORKSPACE_CONFIG=:4096:8
  det=(--set run.deterministic=true --set run.log_every=1 --iterations 6 --set run.checkpoint_every=3)
  timeout 300 "$PY" -m crossnet_fast train "${common[@]}" "${det[@]}" --out "$C/straight" || exit 1
  timeout 300 "$PY" -m crossnet_fast train "${common[@]}" "${det[@]}" --out "$C/split" --max-steps 3 || exit 1
  timeout 300 "$PY" -m crossnet_fast train "${common[@]}" "${det[@]}" --out "$C/split" --resume "$C/split" || exit 1
  "$PY" - "$C" <<'PYEOF' || exit 1
import csv, sys
c = sys.argv[1]
rows = lambda p: [r["loss"] for r in csv.DictReader(open(f"{c}/{p}/train.csv"))]
a, b = rows("straight"), rows("split")
print("straight", a); print("split   ", b)
sys.exit(0 if a == b else "resume on the GPU is not bit-identical")
PYEOF
  echo "=== torchrun (NCCL) with $NGPU process(es), 20 iterations"
  timeout 300 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NGPU" -m crossnet_fast train \
    "${common[@]}" --out "$C/ddp" --iterations 20 --set run.checkpoint_every=20 || exit 1
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print('replica digests', d['state']['replica_digests'])" \
    "$C/ddp/checkpoints/step_00000020/state.json"
  echo "check OK"
  exit 0
fi

[ "$MODE" = "train" ] || { echo "usage: $0 [check|train]"; exit 2; }
for s in 4 8; do
  for b in $BASELINES; do
    stage "${b}_x$s" "paper_x$s" "$SISR_ITERS" --set 'model.name="sisr"' --set "model.sisr=\"$b\""
  done
done
sisr4=(); sisr8=()
[ -f "$OUTROOT/mdsr_x4/model.safetensors" ] && sisr4=(--set "model.init_sisr=\"$OUTROOT/mdsr_x4/model.safetensors\"")
[ -f "$OUTROOT/mdsr_x8/model.safetensors" ] && sisr8=(--set "model.init_sisr=\"$OUTROOT/mdsr_x8/model.safetensors\"")
init4=("${sisr4[@]}")
if [ "$PRE_ITERS" -gt 0 ]; then
  stage synthetic_x4 synthetic_x4 "$PRE_ITERS" "${sisr4[@]}"
  init4=(--set "model.init=\"$OUTROOT/synthetic_x4/model.safetensors\"")  # its SISR included
fi
stage crossnet_x4 paper_x4 "$ITERS" "${init4[@]}"
stage crossnet_x8 paper_x8 "$ITERS" --set "model.init=\"$OUTROOT/crossnet_x4/model.safetensors\"" \
  --set model.init_strict=false "${sisr8[@]}"
echo "=== all stages done. Held-out PSNR per stage: $OUTROOT/<stage>/val.csv; weights: $OUTROOT/<stage>/model.safetensors"
