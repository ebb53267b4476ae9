"""Adapters for fine-tuning: LoRA, TLoRA, CorDA, LeFT, aTLAS, Tucker and TT, with PEFT's verbs.

* The framework: a per-method config (a frozen dataclass validated on creation, subclass of
  :class:`AdapterConfig`) and layer (:class:`Adapter`); :func:`inject` wraps the targeted
  layers (names, suffixes, a regex or ``"all-linear"``; ``exclude_modules``) in
  :class:`AdaptedLayer`, which holds several named adapters, one active
  (:func:`set_adapter`); :func:`disable_adapters` / :func:`disabled`, :func:`delete_adapter`;
  :func:`merge`, :func:`unmerge` (exact), :func:`merge_and_unload`, :func:`unload`;
  :func:`trainable_parameters`; :func:`to_lora` exports any adapter as a LoRA of a chosen rank
  (also as PEFT files). :func:`register_method` adds a method.
* Methods (one subpackage each): :mod:`~factorch.adapters.lora` (rsLoRA, PiSSA),
  :mod:`~factorch.adapters.tlora` (Tao et al. 2025), :mod:`~factorch.adapters.corda`
  (Yang et al. 2024), :mod:`~factorch.adapters.left` (LeFT and the mode-seeking loss of
  LFS-GAN, Seo et al. 2023), :mod:`~factorch.adapters.atlas` (Zhang et al. 2024),
  :mod:`~factorch.adapters.tucker` and :mod:`~factorch.adapters.tt` (factorch's formats).
* Files: :func:`save_pretrained` / :func:`from_pretrained`: safetensors + a JSON config that
  records per module the method, ranks and shapes, rebuilt without re-decomposing; the same
  directory format as :func:`factorch.nn.save_pretrained` for compressed models, which
  :func:`from_pretrained` also reads.

Example:
    >>> model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(),
    ...                             torch.nn.Linear(16, 4))
    >>> model = inject(model, LoraConfig(target_modules="all-linear", rank=2))
    >>> print(trainable_parameters(model))
    trainable params: 104 || all params: 444 || trainable%: 23.4234
"""

from . import atlas as atlas
from . import corda as corda
from . import left as left
from . import lora as lora
from . import tlora as tlora
from . import tt as tt
from . import tucker as tucker
from ._config import ALL_LINEAR as ALL_LINEAR
from ._config import AdapterConfig as AdapterConfig
from ._export import LoraExport as LoraExport
from ._export import LoraFactors as LoraFactors
from ._export import to_lora as to_lora
from ._format_adapter import AdapterImplementation as AdapterImplementation
from ._format_adapter import FormatAdapterConfig as FormatAdapterConfig
from ._layer import AdaptedLayer as AdaptedLayer
from ._layer import Adapter as Adapter
from ._model import ParameterCount as ParameterCount
from ._model import adapted_layers as adapted_layers
from ._model import adapter_names as adapter_names
from ._model import delete_adapter as delete_adapter
from ._model import disable_adapters as disable_adapters
from ._model import disabled as disabled
from ._model import enable_adapters as enable_adapters
from ._model import inject as inject
from ._model import merge as merge
from ._model import merge_and_unload as merge_and_unload
from ._model import set_adapter as set_adapter
from ._model import trainable_parameters as trainable_parameters
from ._model import unload as unload
from ._model import unmerge as unmerge
from ._registry import Method as Method
from ._registry import available_methods as available_methods
from ._registry import get_method as get_method
from ._registry import register_method as register_method
from ._serialization import from_pretrained as from_pretrained
from ._serialization import save_pretrained as save_pretrained
from .atlas import AtlasConfig as AtlasConfig
from .atlas import task_vector as task_vector
from .corda import CordaConfig as CordaConfig
from .corda import collect_covariances as collect_covariances
from .left import LeftConfig as LeftConfig
from .left import assign_clusters as assign_clusters
from .left import mode_seeking_loss as mode_seeking_loss
from .lora import LoraConfig as LoraConfig
from .tlora import TLoraConfig as TLoraConfig
from .tt import TTConfig as TTConfig
from .tucker import TuckerConfig as TuckerConfig

__all__ = [
    "ALL_LINEAR",
    "AdaptedLayer",
    "Adapter",
    "AdapterConfig",
    "AdapterImplementation",
    "AtlasConfig",
    "CordaConfig",
    "FormatAdapterConfig",
    "LeftConfig",
    "LoraConfig",
    "LoraExport",
    "LoraFactors",
    "Method",
    "ParameterCount",
    "TLoraConfig",
    "TTConfig",
    "TuckerConfig",
    "adapted_layers",
    "adapter_names",
    "assign_clusters",
    "atlas",
    "available_methods",
    "collect_covariances",
    "corda",
    "delete_adapter",
    "disable_adapters",
    "disabled",
    "enable_adapters",
    "from_pretrained",
    "get_method",
    "inject",
    "left",
    "lora",
    "merge",
    "merge_and_unload",
    "mode_seeking_loss",
    "register_method",
    "save_pretrained",
    "set_adapter",
    "task_vector",
    "tlora",
    "to_lora",
    "trainable_parameters",
    "tt",
    "tucker",
    "unload",
    "unmerge",
]
