#!/usr/bin/env bash
# GPU figures without downloads: random-weight models with Llama-3-8B's shapes (benchmarks/configs), then
# the steps below, most important first, each writing its own file as soon as it ends (a run cut short
# keeps what finished) and its duration to OUT_DIR/gpu.txt:
#  - generation: benchmark.py --parts generation on the 8B shapes in bfloat16: tokens/s of the generation
#    path before the plan (eager) and the planned one (compiled, auto batch) at batch 8, 64 and auto, each
#    as a share of the bandwidth bound (about 6 minutes on one H100/H200, model writing included);
#  - stage1: benchmark.py --parts stage1: Stage 1 over its K+1 base passes with and without the load;
#  - levels: compile_check.py on the 8B shapes: one compiled model through unmasked, folded, folded,
#    restored levels, compared with the eager model by logits (bfloat16 tolerance), and no recompilation;
#  - tokens: compile_check.py on the real default model when TOKENIZER_DIR holds its weights: the share
#    of identical greedy outputs, compiled vs eager, in bfloat16 (with an eager-vs-eager control).
# STEPS picks steps (default "generation stage1 levels tokens"): where one command may run at most
# 10 minutes, run STEPS=generation first, then STEPS="stage1 levels tokens" (the random model is kept
# in WORK, /tmp/random-models by default). EXTRA=1 adds the earlier SmolLM2-shape, float16 and
# --device_map auto figures.
# Usage: bash benchmarks/gpu_scale_check.sh TOKENIZER_DIR OUT_DIR
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "error: usage: bash benchmarks/gpu_scale_check.sh TOKENIZER_DIR OUT_DIR (e.g. models/smollm2-135m results/gpu)" >&2
    exit 2
fi
TOKENIZER=$1
OUT_DIR=$2
WORK=${WORK:-/tmp/random-models}
STEPS=${STEPS:-generation stage1 levels tokens}
for step in $STEPS; do
    case $step in
        generation | stage1 | levels | tokens) ;;
        *) echo "error: STEPS: unknown step $step; use generation, stage1, levels and/or tokens" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT_DIR"
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT_DIR/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT_DIR/gpu.txt"

timed_step() {  # name, command...: runs it and records its duration
    local name=$1 started=$SECONDS
    shift
    "$@"
    echo "step $name: $((SECONDS - started)) s" | tee -a "$OUT_DIR/gpu.txt"
}
random_model() {  # shapes
    [ -d "$WORK/$1" ] || timed_step "random model $1" python3 benchmarks/random_model.py --config "benchmarks/configs/$1.json" --tokenizer "$TOKENIZER" --output_dir "$WORK/$1" --dtype bfloat16
}
bench() {  # model, output name, flags...
    local model=$1 name=$2
    shift 2
    random_model "$model"
    timed_step "$name" python3 benchmarks/benchmark.py --model_path "$WORK/$model" --repeats 3 --output "$OUT_DIR/$name.json" "$@"
}

for step in $STEPS; do
    case $step in
        generation)  # batch 8: 16 prompts (two batches) keep the slow eager row short; 64: 64; auto: 512
            bench llama3_8b gpu_llama3_8b_shapes_bf16_generation --dtype bfloat16 --parts generation --throughput_prompts 16 ;;
        stage1)
            bench llama3_8b gpu_llama3_8b_shapes_bf16_stage1 --dtype bfloat16 --parts stage1 ;;
        levels)
            random_model llama3_8b
            timed_step levels python3 benchmarks/compile_check.py --model_path "$WORK/llama3_8b" --dtype bfloat16 --token_prompts 0 --output "$OUT_DIR/compile_check_llama3_8b_shapes_bf16.json" --log_level WARNING ;;
        tokens)
            if [ -f "$TOKENIZER/config.json" ] && ls "$TOKENIZER"/*.safetensors > /dev/null 2>&1; then
                timed_step tokens python3 benchmarks/compile_check.py --model_path "$TOKENIZER" --dtype bfloat16 --token_prompts 64 --output "$OUT_DIR/compile_check_default_model_bf16.json" --log_level WARNING
            else
                echo "no weights in $TOKENIZER: token-share check skipped (prepare the default model first)" | tee -a "$OUT_DIR/gpu.txt"
            fi ;;
    esac
done
if [ "${EXTRA:-0}" = 1 ]; then
    bench smollm2_135m gpu_smollm2_shapes_bf16 --dtype bfloat16 --parts stage1,masking,generation
    bench smollm2_135m gpu_smollm2_shapes_fp16 --dtype float16 --parts masking
    bench llama3_8b gpu_llama3_8b_shapes_bf16_auto --dtype bfloat16 --device_map auto --parts masking
fi
