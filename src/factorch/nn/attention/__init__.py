"""Structured attention: tensor attention over token pairs, metric-tensor attention, MoHD.

* Tensor attention (Alman & Song, ICLR 2024): every query attends to *pairs* of tokens,
  ``D⁻¹ exp(Q (K1 ⊘ K2)ᵀ / sqrt(d)) (V1 ⊘ V2)``. :func:`tensor_attention` is exact and blockwise
  (online softmax; the ``L x S²`` scores never exist), :func:`tensor_attention_approx` is the
  paper's linear-time polynomial algorithm with a proven, run-time-checked error bound
  (:func:`tensor_attention_plan`, :class:`ApproximationPlan`), :class:`TensorAttention` the
  multi-head module, :func:`tensor_attention_weights` the pair weights of small inputs.
* Metric-tensor attention (PLDR-LLM, Gokden 2025): logits ``q G kᵀ`` with ``G`` inferred by a
  power-law deep residual network (:class:`PowerLawMetric`); :func:`metric_tensor_attention`,
  :class:`MetricTensorAttention` with the G-cache (:class:`MetricCache`); ``G = I`` is
  scaled-dot-product attention.
* Mixture of hidden dimensions (MoHD, Chen et al., ICML 2025): :class:`MixtureOfHiddenDims`, a
  feed-forward block whose hidden (model) dimension is split into shared and routed groups.
* :func:`match3`: the Match3 task that motivates tensor attention (Sanford, Hsu, Telgarsky 2023).
"""

from ._approx import ApproximationPlan as ApproximationPlan
from ._approx import TensorAttentionRegimeWarning as TensorAttentionRegimeWarning
from ._approx import tensor_attention_approx as tensor_attention_approx
from ._approx import tensor_attention_plan as tensor_attention_plan
from ._exact import tensor_attention as tensor_attention
from ._exact import tensor_attention_weights as tensor_attention_weights
from ._match3 import match3 as match3
from ._match3 import match3_labels as match3_labels
from ._metric import MetricTensorAttention as MetricTensorAttention
from ._metric import metric_tensor_attention as metric_tensor_attention
from ._mohd import MixtureOfHiddenDims as MixtureOfHiddenDims
from ._mohd import MoHDCost as MoHDCost
from ._mohd import RoutingStats as RoutingStats
from ._power_law import MetricCache as MetricCache
from ._power_law import PowerLawMetric as PowerLawMetric
from ._tensor import TensorAttention as TensorAttention

__all__ = [
    "ApproximationPlan",
    "MetricCache",
    "MetricTensorAttention",
    "MixtureOfHiddenDims",
    "MoHDCost",
    "PowerLawMetric",
    "RoutingStats",
    "TensorAttention",
    "TensorAttentionRegimeWarning",
    "match3",
    "match3_labels",
    "metric_tensor_attention",
    "tensor_attention",
    "tensor_attention_approx",
    "tensor_attention_plan",
    "tensor_attention_weights",
]
