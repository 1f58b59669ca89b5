"""Core of the critical-neuron toolkit (arXiv 2510.10238).

Scripts under ``method/``, ``evaluation/`` and ``comparison/`` parse flags and call into this
package; model loading, neuron sites, masking, the two stages, perplexity and file I/O live here once.
"""

from critical_neurons.errors import UsageError
from critical_neurons.masking import NeuronMasker
from critical_neurons.records import Channel, NeuronRecord, distinct_channels

__all__ = ["Channel", "NeuronMasker", "NeuronRecord", "UsageError", "distinct_channels"]
