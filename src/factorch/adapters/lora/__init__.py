"""LoRA (Hu et al., ICLR 2022) with rsLoRA scaling and PiSSA initialisation."""

from .._registry import register_method
from ._config import LoraConfig as LoraConfig
from ._config import LoraInit as LoraInit
from ._config import LowRankConfig as LowRankConfig
from ._layer import LoraLayer as LoraLayer

register_method(LoraLayer)

__all__ = ["LoraConfig", "LoraInit", "LoraLayer", "LowRankConfig"]
