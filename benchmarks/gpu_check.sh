#!/usr/bin/env bash
# GPU checks (run on a lent GPU machine): Stage 1/2 in float32, float16, bfloat16 and with --device_map auto,
# then the benchmark in bfloat16. Usage: bash benchmarks/gpu_check.sh GGUF_FILE OUT_DIR
set -euo pipefail
GGUF=$1
OUT_DIR=$2
MODEL=${MODEL:-/tmp/smollm2-135m}
export TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python3 models/prepare_default_model.py --gguf "$GGUF" --output_dir "$MODEL" > /dev/null
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
TEXT=$(python3 -c "from critical_neurons.model.folding import BOOKENDS_TEXT; print(BOOKENDS_TEXT)")
run() {  # name, extra flags...
    local name=$1; shift
    python3 method/1_importance_evaluation.py --model_path "$MODEL" --input_text "$TEXT" --noise_scale 5 --num_samples 100 \
        --output_file "$OUT_DIR/stage1_$name.json" --log_level WARNING "$@"
    python3 method/2_neuron_identification.py --model_path "$MODEL" --neuron_file "$OUT_DIR/stage1_$name.json" --test_text "$TEXT" \
        --output_file "$OUT_DIR/stage2_$name.json" --log_level WARNING "$@"
}
run float32 --dtype float32
run float16 --dtype float16
run bfloat16 --dtype bfloat16
run bfloat16_auto --dtype bfloat16 --device_map auto
python3 - "$OUT_DIR" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = []
for name in ("float32", "float16", "bfloat16", "bfloat16_auto"):
    s1 = json.loads((out / f"stage1_{name}.json").read_text()); s2 = json.loads((out / f"stage2_{name}.json").read_text())
    top = s1["top_neurons"][0]
    rows.append({"run": name, "device_map": s1["model_info"]["device_map"], "stage1_compute_s": s1["metadata"]["compute_s"],
                 "stage1_wall_s": s1["metadata"]["wall_time_s"], "top": f'{top["layer_name"]}[{top["hidden_idx"]}]@{top["seq_idx"]}',
                 "stage2_compute_s": s2["metadata"]["compute_s"], "critical_records": s2["num_critical_records"],
                 "baseline_ppl": s2["baseline_perplexity"], "masked_ppl": s2["masking_steps"][-1]["masked_perplexity"],
                 "orders": s2["masking_steps"][-1]["magnitude_increase"]})
(out / "gpu_summary.json").write_text(json.dumps(rows, indent=2))
for row in rows: print(json.dumps(row))
PY
python3 benchmarks/benchmark.py --model_path "$MODEL" --dtype bfloat16 --output "$OUT_DIR/benchmark_gpu_bf16.json"
