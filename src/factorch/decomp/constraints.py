"""Constraints and penalties on CP factors, for :func:`~factorch.decomp.constrained_cp` and
:func:`~factorch.decomp.parafac2` (``constraints=``).

Each is a :class:`ProximalOperator`: a frozen value with a ``prox(factor, rho)`` method (and a
``penalty(factor)`` value for penalties). Subclass :class:`ProximalOperator` to add your own.

=====================  ==============================================  ========================
operator               what it imposes on a factor ``A`` (``I x R``)   TensorLy's spelling
=====================  ==============================================  ========================
``NonNegative()``      ``A >= 0``                                      ``non_negative``
``Box(low, high)``     ``low <= A <= high``                            --
``Simplex(total)``     columns ``>= 0`` summing to ``total``           ``simplex``
``L1Ball(radius)``     column L1 norms ``<= radius``                   ``soft_sparsity``
``L2Ball(radius)``     column L2 norms ``<= radius``                   --
``UnitNorm()``         unit L2 norm columns                            ``normalize`` (role)
``Monotone()``         non-decreasing (or non-increasing) columns      ``monotonicity``
``Unimodal()``         unimodal columns (optionally non-negative)      ``unimodality``
``HardSparsity(k)``    at most ``k`` non-zeros (matrix or column)      ``hard_sparsity``,
                                                                       ``normalized_sparsity``
``L1(w)``              penalty ``w sum |A|`` (optionally ``A >= 0``)   ``l1_reg``
``L2(w)``              penalty ``w ||A||_F``                           ``l2_reg``
``Ridge(w)``           penalty ``w ||A||_F^2``                         ``l2_square_reg``
``GroupLasso(w)``      penalty ``w sum_i ||A[i, :]||``                 ``group_lasso``
``Smooth(w)``          penalty ``w sum_r ||D2 a_r||^2``                ``smoothness``
=====================  ==============================================  ========================
"""

from ._prox import L1 as L1
from ._prox import L2 as L2
from ._prox import Box as Box
from ._prox import GroupLasso as GroupLasso
from ._prox import HardSparsity as HardSparsity
from ._prox import L1Ball as L1Ball
from ._prox import L2Ball as L2Ball
from ._prox import Monotone as Monotone
from ._prox import NonNegative as NonNegative
from ._prox import ProximalOperator as ProximalOperator
from ._prox import Ridge as Ridge
from ._prox import Simplex as Simplex
from ._prox import Smooth as Smooth
from ._prox import Unimodal as Unimodal
from ._prox import UnitNorm as UnitNorm

__all__ = [
    "L1",
    "L2",
    "Box",
    "GroupLasso",
    "HardSparsity",
    "L1Ball",
    "L2Ball",
    "Monotone",
    "NonNegative",
    "ProximalOperator",
    "Ridge",
    "Simplex",
    "Smooth",
    "Unimodal",
    "UnitNorm",
]
