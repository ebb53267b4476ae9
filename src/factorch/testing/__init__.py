"""Public test helpers: tolerance table and assertions.

Hypothesis strategies live in :mod:`factorch.testing.strategies`, the only module that imports
hypothesis (a test dependency: ``pip install factorch[test]``).
"""

from ._asserts import assert_close_tensors as assert_close_tensors
from ._asserts import assert_recovers as assert_recovers
from ._asserts import tolerance as tolerance

__all__ = ["assert_close_tensors", "assert_recovers", "tolerance"]
