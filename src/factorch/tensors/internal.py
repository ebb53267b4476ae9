"""Pieces of :mod:`factorch.tensors` shared with higher layers (not public API).

Names carry no leading underscore so that no module imports another subpackage's private names.
"""

from ._sparse import _KEY_LIMIT as KEY_LIMIT

__all__ = ["KEY_LIMIT"]
