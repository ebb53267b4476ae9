"""Figures for factorized tensors and decompositions (needs the ``plot`` extra: matplotlib).

matplotlib is imported only when a function here is called, so ``import factorch`` never needs
it. Every function returns a bare :class:`matplotlib.figure.Figure` (no pyplot, no global
state, headless); :func:`save_figure` writes it as a PNG atomically and :func:`figure_to_png`
returns the bytes.
"""

from ._common import figure_to_png as figure_to_png
from ._common import save_figure as save_figure
from ._cp import normalized_cp_factors as normalized_cp_factors
from ._cp import plot_cp_factors as plot_cp_factors
from ._diagnostics import plot_convergence as plot_convergence
from ._diagnostics import plot_rank_scan as plot_rank_scan
from ._diagnostics import plot_tucker_core as plot_tucker_core
from ._functional import plot_functional_map as plot_functional_map
from ._functional import plot_latent_functions as plot_latent_functions

__all__ = [
    "figure_to_png",
    "normalized_cp_factors",
    "plot_convergence",
    "plot_cp_factors",
    "plot_functional_map",
    "plot_latent_functions",
    "plot_rank_scan",
    "plot_tucker_core",
    "save_figure",
]
