#!/usr/bin/env bash
# Every table and figure of the report on the default model, offline (about 15-30 min on 2 CPU cores).
#   bash ablation/reproduce_default.sh [MODEL_PATH=models/smollm2-135m]
# Perplexity sweeps use the WikiText fixture (EVAL_DATA, 4 WikiText-103 test paragraphs; set EVAL_DATA=""
# to use the hub) and C4 uses the C4 fixture (C4_DATA). Stage 1 runs at the paper's alpha 5, K 100.
# Outputs: neurons/*.json, results/*.json, results/ablation/, results/report/ (tables), assets/*.png.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODEL=${1:-models/smollm2-135m}
EVAL_DATA=${EVAL_DATA-tests/fixtures/wikitext_test.jsonl}
C4_DATA=${C4_DATA:-tests/fixtures/c4_validation.json.gz}
TEXT=$(cat ablation/texts/bookends.txt)
SWEEP="100,200,300,400,500,600,700,800,900,1000"
DATA_ARGS=()
[ -n "$EVAL_DATA" ] && DATA_ARGS=(--dataset_path "$EVAL_DATA")
started=$(date +%s)

python method/1_importance_evaluation.py --model_path "$MODEL" --input_text "$TEXT" --noise_scale 5 --num_samples 100 \
    --output_file neurons/importance_ranked_neurons.json
python method/2_neuron_identification.py --model_path "$MODEL" --neuron_file neurons/importance_ranked_neurons.json \
    --test_text "$TEXT" --output_file results/critical_neurons_result.json
python method/3_characterize_critical_neurons.py --model_path "$MODEL" --neuron_file results/critical_neurons_result.json \
    --output_file results/characterization.json
python comparison/activation_masking.py --model_path "$MODEL" --input_text "$TEXT" --output_file neurons/activation_ranked_neurons.json
python comparison/gradient_masking.py --model_path "$MODEL" --input_text "$TEXT" --output_file neurons/gradient_ranked_neurons.json

# Perplexity as 0, 1 .. 1000 ranked records are masked (ours, AM, GM) and for random channel sets.
for method in ours:importance am:activation gm:gradient; do
    python evaluation/wikitext_evaluator.py --model_path "$MODEL" --neuron_file "neurons/${method#*:}_ranked_neurons.json" \
        --masking_levels "0,1,2,5,10,20,50,$SWEEP" "${DATA_ARGS[@]}" --output_file "results/${method%%:*}_comparison_results.json"
done
python comparison/random_masking.py --model_path "$MODEL" --max_samples 1000 --masking_levels "0,$SWEEP" --num_runs 10 \
    "${DATA_ARGS[@]}" --output_file results/random_masking_results.json

# Before/after masking the critical set found by stage 2.
critical=$(python -m critical_neurons.reporting.console --count results/critical_neurons_result.json)
python evaluation/wikitext_evaluator.py --model_path "$MODEL" --neuron_file results/critical_neurons_result.json \
    --masking_levels "0,$critical" "${DATA_ARGS[@]}" --output_file results/wikitext_results.json
python evaluation/c4_evaluator.py --model_path "$MODEL" --neuron_file results/critical_neurons_result.json \
    --masking_levels "0,$critical" --dataset_path "$C4_DATA" --output_file results/c4_results.json

bash ablation/noise_scale.sh "$MODEL" results/ablation
bash ablation/num_samples.sh "$MODEL" results/ablation
bash ablation/input_texts.sh "$MODEL" results/ablation

python ablation/report.py
echo "reproduce_default.sh finished in $(( $(date +%s) - started )) s"
