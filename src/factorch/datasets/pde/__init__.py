"""Generated PDE data (never downloaded): Darcy flow, viscous Burgers, Navier--Stokes.

Each generator draws its random inputs from a CPU ``torch.Generator`` (the same seed gives the same
data on every device and, because the random fields have a fixed set of modes, the same functions
at every resolution), solves the PDE in float64 with a solver checked against an analytic or
manufactured solution, and returns a frozen :class:`PDEData` (``x``, ``y`` channels first).
``cache_dir=`` keeps the result on disk (atomic write, keyed by the arguments and the generator's
state; :func:`default_cache_dir` is the conventional place).

=======================  ==================================================================
generator                problem and solver
=======================  ==================================================================
:func:`darcy_flow`       ``-div(a grad u) = 1``, zero Dirichlet; five-point FD, batched PCG
:func:`burgers`          ``u_t + (u^2/2)_x = nu u_xx``, periodic; pseudo-spectral, ETDRK4
:func:`navier_stokes`    vorticity on the torus, FNO forcing; pseudo-spectral, CN/AB2
=======================  ==================================================================
"""

from ._burgers import burgers as burgers
from ._burgers import solve_burgers as solve_burgers
from ._darcy import darcy_flow as darcy_flow
from ._darcy import solve_darcy as solve_darcy
from ._data import PDEData as PDEData
from ._data import default_cache_dir as default_cache_dir
from ._grf import neumann_grf as neumann_grf
from ._grf import periodic_grf as periodic_grf
from ._navier_stokes import fno_forcing as fno_forcing
from ._navier_stokes import navier_stokes as navier_stokes
from ._navier_stokes import solve_navier_stokes as solve_navier_stokes

__all__ = [
    "PDEData",
    "burgers",
    "darcy_flow",
    "default_cache_dir",
    "fno_forcing",
    "navier_stokes",
    "neumann_grf",
    "periodic_grf",
    "solve_burgers",
    "solve_darcy",
    "solve_navier_stokes",
]
