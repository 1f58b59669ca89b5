#!/usr/bin/env bash
# GPU figures without downloads: random-weight models with SmolLM2-135M's and Llama-3-8B's shapes
# (benchmarks/configs), timed by benchmark.py in bfloat16 and float16 and with --device_map auto.
# Usage: bash benchmarks/gpu_scale_check.sh TOKENIZER_DIR OUT_DIR
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "error: usage: bash benchmarks/gpu_scale_check.sh TOKENIZER_DIR OUT_DIR (e.g. models/smollm2-135m results/gpu)" >&2
    exit 2
fi
TOKENIZER=$1
OUT_DIR=$2
WORK=${WORK:-/tmp/random-models}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT_DIR/gpu.txt"
for shapes in smollm2_135m llama3_8b; do
    python3 benchmarks/random_model.py --config "benchmarks/configs/$shapes.json" --tokenizer "$TOKENIZER" --output_dir "$WORK/$shapes" --dtype bfloat16
done
bench() {  # model, output name, flags...
    local model=$1 name=$2
    shift 2
    python3 benchmarks/benchmark.py --model_path "$WORK/$model" --repeats 3 --output "$OUT_DIR/$name.json" "$@"
}
bench smollm2_135m gpu_smollm2_shapes_bf16 --dtype bfloat16 --parts stage1,masking,generation
bench smollm2_135m gpu_smollm2_shapes_fp16 --dtype float16 --parts masking
bench llama3_8b gpu_llama3_8b_shapes_bf16 --dtype bfloat16 --parts stage1,masking,generation
bench llama3_8b gpu_llama3_8b_shapes_bf16_auto --dtype bfloat16 --device_map auto --parts masking
