"""Random factorized tensors and planted low-rank problems.

Entries are drawn on the CPU (in float64) with the given ``torch.Generator`` and then moved, so a
seed gives the same tensor on every device.
"""

from ._constructors import random_cp as random_cp
from ._constructors import random_tr as random_tr
from ._constructors import random_tt as random_tt
from ._constructors import random_tt_matrix as random_tt_matrix
from ._constructors import random_tucker as random_tucker
from ._planted import Planted as Planted
from ._planted import PlantedKind as PlantedKind
from ._planted import add_noise as add_noise
from ._planted import planted as planted

__all__ = [
    "Planted",
    "PlantedKind",
    "add_noise",
    "planted",
    "random_cp",
    "random_tr",
    "random_tt",
    "random_tt_matrix",
    "random_tucker",
]
