"""Every output kind the toolkit writes: its ``kind`` constant here, its builder in
:mod:`critical_neurons.outputs.formats.build`, its reader and shape check in :mod:`critical_neurons.outputs.formats.read`.

A file says what it is in ``kind``; consumers dispatch on these constants, never on key sets or
file names, so adding a field means editing one builder and, where it is checked, one reader.
"""

RANKING = "ranking"  # Stage 1, AM, GM: records ranked by score
CRITICAL_SET = "critical_set"  # Stage 2: the critical prefix of a ranking
EVALUATION = "evaluation"  # an evaluator's metrics per masking level
RANDOM_MASKING = "random_masking"  # perplexity per level for random channel sets
CHARACTERIZATION = "characterization"  # profiles and effects of the critical channels
LESION = "lesion"  # lesion.json beside an exported model
ABLATION_SUMMARY = "ablation_summary"  # critical-set size and ranking agreement per ablation setting

KINDS = (RANKING, CRITICAL_SET, EVALUATION, RANDOM_MASKING, CHARACTERIZATION, LESION, ABLATION_SUMMARY)
