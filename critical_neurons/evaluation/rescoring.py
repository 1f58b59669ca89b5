"""How each generative benchmark's task is rebuilt from a stored result's settings, to rescore its responses without the model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from critical_neurons.evaluation.tasks import gpqa, humaneval, ifeval, math500, mgsm, mmlu_pro, simpleqa
from critical_neurons.evaluation.tasks.common import GenerativeTask

Builder = Callable[[dict[str, Any], contextlib.ExitStack], GenerativeTask]
# method -> (task module, task built from the result's settings; the stack closes what a task holds open)
TASKS: dict[str, tuple[ModuleType, Builder]] = {
    mmlu_pro.DEFAULTS.name: (mmlu_pro, lambda settings, stack: mmlu_pro.task()),
    gpqa.DEFAULTS.name: (gpqa, lambda settings, stack: gpqa.task()),
    ifeval.DEFAULTS.name: (ifeval, lambda settings, stack: ifeval.task()),
    mgsm.DEFAULTS.name: (mgsm, lambda settings, stack: mgsm.task()),
    simpleqa.DEFAULTS.name: (simpleqa, lambda settings, stack: simpleqa.task(settings.get("template_idx", 0))),
    math500.DEFAULTS.name: (math500, lambda settings, stack: math500.task(stack.enter_context(math500.BoundedVerifier(settings.get("verify_timeout", 5))))),
    # generated code runs in the sandbox when it works here (bwrap), whatever the original run used
    humaneval.DEFAULTS.name: (humaneval, lambda settings, stack: humaneval.task(settings.get("timeout", 5.0), settings.get("memory_limit_mb", 4096), humaneval.resolve_sandbox("auto"))),
}
