"""Core of the critical-neuron toolkit (arXiv 2510.10238).

Scripts under ``method/``, ``evaluation/`` and ``comparison/`` parse flags with :mod:`critical_neurons.cli`
and call into this package, which holds each job once: ``model`` (the model's mechanics), ``method``
(the two stages and the baselines), ``evaluation`` (masked evaluation and the benchmark tasks),
``outputs`` (the files a run writes) and ``reporting`` (tables, figures, the console summary).
"""

from critical_neurons.errors import UsageError
from critical_neurons.model.masking import NeuronMasker
from critical_neurons.outputs.records import Channel, NeuronRecord, distinct_channels

__all__ = ["Channel", "NeuronMasker", "NeuronRecord", "UsageError", "distinct_channels"]
