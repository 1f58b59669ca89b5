"""MGSM: their ``MGSMEvaluator`` against ``critical_neurons.evaluation.reference.mgsm``.

Their gold is ``answer`` when the row has one, else ``answer_number``; our loader reads
``answer_number``, so their rows carry only that (as the number our sample holds).
"""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text
from critical_neurons.evaluation.tasks import mgsm

# Left out of their ``evaluation``: the gold, whether there is one, and the prediction the result holds already.
EVALUATION_COPIES = ("predicted_answer", "ground_truth_answer", "has_ground_truth")
GOLDS = ("18", "3", "70000", "-4", "0.5", "1000", "12", "0")
PHRASES = ("the answer is ", "answer: ", "final answer: ", "therefore, ", "so ", "thus,", "also ", " = ", "equals ", "equal", " is ", "1,000", "5/0", "3/4", "step 2", "because ", "×", "٣", "ſo ")


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    gold = float(sample["answer"])
    return {"question": sample.get("question", ""), "answer_number": int(gold) if gold.is_integer() else gold}


def their_verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    """Their result without its input copies (question, response, gold; ``evaluation``'s gold and its repeated prediction)."""
    evaluation = {key: value for key, value in result["evaluation"].items() if key not in EVALUATION_COPIES}
    return {**{key: result[key] for key in ("is_meaningful", "predicted_answer", "error") if key in result}, "evaluation": evaluation}


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    gold = rng.choice(GOLDS)
    sample = {"id": f"en-{GOLDS.index(gold)}", "language": "en", "question": "How many?", "answer": gold}
    return sample, random_text(rng, (*ALPHABET, *PHRASES, gold, f"{gold}."))


DRIVER = Driver(module="mgsm_evaluator", evaluator_class="MGSMEvaluator", method=mgsm.DEFAULTS.name, their_row=their_row, their_verdict=their_verdict, fuzz=fuzz)
