#!/usr/bin/env bash
# GPU figures without downloads (about 10 minutes on one H100/H200): random-weight models with SmolLM2-135M's
# and Llama-3-8B's shapes (benchmarks/configs), then
#  - benchmark.py --parts generation,stage1 on the 8B shapes in bfloat16: tokens/s of the generation path
#    before the plan (eager) and the planned one (compiled, auto batch) at batch 8, 64 and auto, each as a
#    share of the bandwidth bound; Stage 1 over its K+1 base passes with and without the load;
#  - compile_check.py on the 8B shapes: one compiled model through unmasked, folded, folded, restored
#    levels, compared with the eager model by logits (bfloat16 tolerance), and no recompilation;
#  - compile_check.py on the real default model when TOKENIZER_DIR holds its weights: the share of
#    identical greedy outputs, compiled vs eager, in bfloat16 (with an eager-vs-eager control).
# EXTRA=1 also reruns the earlier SmolLM2-shape, float16 and --device_map auto figures.
# Usage: bash benchmarks/gpu_scale_check.sh TOKENIZER_DIR OUT_DIR
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "error: usage: bash benchmarks/gpu_scale_check.sh TOKENIZER_DIR OUT_DIR (e.g. models/smollm2-135m results/gpu)" >&2
    exit 2
fi
TOKENIZER=$1
OUT_DIR=$2
WORK=${WORK:-/tmp/random-models}
mkdir -p "$OUT_DIR"
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT_DIR/gpu.txt"
shapes_list=llama3_8b
if [ "${EXTRA:-0}" = 1 ]; then shapes_list="smollm2_135m llama3_8b"; fi
for shapes in $shapes_list; do
    [ -d "$WORK/$shapes" ] || python3 benchmarks/random_model.py --config "benchmarks/configs/$shapes.json" --tokenizer "$TOKENIZER" --output_dir "$WORK/$shapes" --dtype bfloat16
done
bench() {  # model, output name, flags...
    local model=$1 name=$2
    shift 2
    python3 benchmarks/benchmark.py --model_path "$WORK/$model" --repeats 3 --output "$OUT_DIR/$name.json" "$@"
}
bench llama3_8b gpu_llama3_8b_shapes_bf16_scale --dtype bfloat16 --parts generation,stage1
python3 benchmarks/compile_check.py --model_path "$WORK/llama3_8b" --dtype bfloat16 --token_prompts 0 --output "$OUT_DIR/compile_check_llama3_8b_shapes_bf16.json" --log_level WARNING
if [ -f "$TOKENIZER/config.json" ] && ls "$TOKENIZER"/*.safetensors > /dev/null 2>&1; then
    python3 benchmarks/compile_check.py --model_path "$TOKENIZER" --dtype bfloat16 --token_prompts 64 --output "$OUT_DIR/compile_check_default_model_bf16.json" --log_level WARNING
else
    echo "no weights in $TOKENIZER: token-share check skipped (prepare the default model first)" | tee -a "$OUT_DIR/gpu.txt"
fi
if [ "${EXTRA:-0}" = 1 ]; then
    bench smollm2_135m gpu_smollm2_shapes_bf16 --dtype bfloat16 --parts stage1,masking,generation
    bench smollm2_135m gpu_smollm2_shapes_fp16 --dtype float16 --parts masking
    bench llama3_8b gpu_llama3_8b_shapes_bf16_auto --dtype bfloat16 --device_map auto --parts masking
fi
