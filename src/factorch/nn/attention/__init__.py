"""Structured attention: tensor attention over token pairs, metric-tensor attention, MoHD."""

from ._approx import ApproximationPlan as ApproximationPlan
from ._approx import TensorAttentionRegimeWarning as TensorAttentionRegimeWarning
from ._approx import tensor_attention_approx as tensor_attention_approx
from ._approx import tensor_attention_plan as tensor_attention_plan
from ._exact import tensor_attention as tensor_attention
from ._exact import tensor_attention_weights as tensor_attention_weights

__all__ = [
    "ApproximationPlan",
    "TensorAttentionRegimeWarning",
    "tensor_attention",
    "tensor_attention_approx",
    "tensor_attention_plan",
    "tensor_attention_weights",
]
