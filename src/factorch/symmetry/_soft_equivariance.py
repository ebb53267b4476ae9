r"""Soft equivariance under mixed symmetries: projection regularisers with automatic weights.

For a network with linear layers :math:`(W_i, b_i)` and candidate symmetry groups :math:`G_j`
(each with representations :math:`ρ^j_0, ρ^j_1, \dots` of the spaces between layers), the
equivariance regulariser of group :math:`j` is the squared distance of the weights to the
equivariant ones,

.. math::

    R_j = \sum_i \tfrac12 \|W_i - P^j_i W_i\|^2 + \tfrac12 \|b_i - P^{j,b}_i b_i\|^2,

with :math:`P^j_i` the orthogonal projector onto :math:`G_j`-equivariant maps
:math:`ρ^j_i \to ρ^j_{i+1}` (:func:`equivariant_projector`) and :math:`P^{j,b}_i` the one onto
invariant biases (maps from the trivial representation). The loss adds
:math:`\sum_j λ_j R_j`. The weights are tuned automatically (Kim et al., 2023): after a
warm-up, with :math:`\underline R_j` the smallest :math:`R_j` seen since the last update,

.. math::

    λ_j \leftarrow λ_j \left(\frac{\min_k \underline R_k}{\underline R_j}\right)^{γ},

so a symmetry the data violates (the fit cannot make :math:`R_j` small) loses weight and the
approximate symmetries keep it -- the method discovers which candidate symmetries hold.

Reference:
    H. Kim, H. Lee, H. Yang, J. Lee, Regularizing towards soft equivariance under mixed
    symmetries, ICML 2023.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ._projectors import EquivariantProjector, equivariant_projector
from ._representations import Representation

__all__ = ["SoftEquivarianceRegularizer"]


Projectors = list[tuple[EquivariantProjector, EquivariantProjector | None]]


def _layer_projectors(
    layers: list[torch.nn.Linear], name: str, chain: list[Representation], fn: str
) -> Projectors:
    """For each layer: the weight projector and (with a bias) the invariant-bias projector."""
    if len(chain) != len(layers) + 1:
        raise ValueError(
            f"{fn}: symmetry {name!r} needs {len(layers) + 1} representations (one per space "
            f"between layers, ends included); got {len(chain)}."
        )
    out: Projectors = []
    for k, layer in enumerate(layers):
        rep_in, rep_out = chain[k], chain[k + 1]
        for side, rep, size in (
            ("input", rep_in, layer.in_features),
            ("output", rep_out, layer.out_features),
        ):
            if not isinstance(rep, Representation):
                raise TypeError(
                    f"{fn}: symmetry {name!r}: representations must be Representation values; "
                    f"got {type(rep).__name__}."
                )
            if rep.dim != size:
                raise ValueError(
                    f"{fn}: symmetry {name!r}: the {side} representation of layers[{k}] has "
                    f"dimension {rep.dim} but the layer has {size} {side} features."
                )
        p_b = (
            equivariant_projector(rep_in.group.trivial(), rep_out)
            if layer.bias is not None
            else None
        )
        out.append((equivariant_projector(rep_in, rep_out), p_b))
    return out


class SoftEquivarianceRegularizer(torch.nn.Module):
    r"""Projection regularisers toward several symmetry groups, with auto-tuned weights.

    Args:
        layers: the ``nn.Linear`` layers to regularise, in order (``bias`` optional).
        symmetries: for each candidate symmetry, a name and ``len(layers) + 1`` representations
            of one group: the input of layer 0, the output of layer 0 (= input of layer 1), ...,
            the output of the last layer.
        power: the exponent :math:`γ` of the weight update.
        initial_weight: the starting :math:`λ_j` of every symmetry.

    Attributes:
        names: the symmetry names, in order.
        weights: ``(num_symmetries,)`` buffer of the current :math:`λ_j`.

    Raises:
        TypeError: layers that are not ``nn.Linear``; representations of the wrong type.
        ValueError: no layers or symmetries; a representation chain of the wrong length or whose
            dimensions do not match the layers; ``power`` or ``initial_weight`` not positive.

    Example:
        >>> g = rotation_group(3, reflections=True)
        >>> lin = torch.nn.Linear(3, 6, bias=False)
        >>> reg = SoftEquivarianceRegularizer([lin], {"O(3)": [g.vector(), 2 * g.vector()]})
        >>> float(reg.penalties()["O(3)"].detach()) >= 0.0
        True
    """

    weights: torch.Tensor

    def __init__(
        self,
        layers: Sequence[torch.nn.Linear],
        symmetries: Mapping[str, Sequence[Representation]],
        *,
        power: float = 1.0,
        initial_weight: float = 1.0,
    ) -> None:
        super().__init__()
        fn = "SoftEquivarianceRegularizer"
        layers = list(layers)
        if not layers:
            raise ValueError(f"{fn}: layers must contain at least one nn.Linear; got none.")
        for k, layer in enumerate(layers):
            if not isinstance(layer, torch.nn.Linear):
                raise TypeError(
                    f"{fn}: layers[{k}] must be a torch.nn.Linear; got {type(layer).__name__}."
                )
        if not isinstance(symmetries, Mapping) or not symmetries:
            raise ValueError(
                f"{fn}: symmetries must be a non-empty mapping name -> representations."
            )
        for name, value in (("power", power), ("initial_weight", initial_weight)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value > 0
                or not math.isfinite(value)
            ):
                raise ValueError(f"{fn}: {name} must be a positive finite number; got {value!r}.")
        self.layers = list(layers)  # not registered: the regulariser does not own the model
        self.names = tuple(str(n) for n in symmetries)
        self.power = float(power)
        self.projectors = [
            _layer_projectors(self.layers, str(name), list(chain), fn)
            for name, chain in symmetries.items()
        ]
        self.register_buffer(
            "weights", torch.full((len(self.names),), float(initial_weight), dtype=torch.float64)
        )
        self._minima: list[float] = [math.inf] * len(self.names)

    def penalties(self) -> dict[str, torch.Tensor]:
        """``{name: R_j}``: the regularisers (differentiable in the layers' parameters)."""
        out = {}
        for name, per_layer in zip(self.names, self.projectors):
            terms = []
            for layer, (p_w, p_b) in zip(self.layers, per_layer):
                w = layer.weight
                terms.append(0.5 * (w - p_w(w)).pow(2).sum())
                if p_b is not None and layer.bias is not None:
                    b = layer.bias[:, None]
                    terms.append(0.5 * (b - p_b(b)).pow(2).sum())
            out[name] = torch.stack(terms).sum()
        return out

    def forward(self) -> torch.Tensor:
        """:math:`\\sum_j λ_j R_j`, and records each :math:`R_j` for the next weight update.

        The weights enter as constants (they are tuned by :meth:`update_weights`, not learnt).
        """
        pens = self.penalties()
        terms = []
        for j, name in enumerate(self.names):
            value = pens[name]
            self._minima[j] = min(self._minima[j], float(value.detach()))
            terms.append(float(self.weights[j]) * value)
        return torch.stack(terms).sum()

    def update_weights(self) -> dict[str, float]:
        r"""Rescale :math:`λ_j \leftarrow λ_j (\min_k \underline R_k / \underline R_j)^γ` and reset.

        :math:`\underline R_j` is the smallest :math:`R_j` seen by :meth:`forward` since the last
        update. Returns the new weights by name.

        Raises:
            ValueError: when :meth:`forward` has not run since the last update.
        """
        if any(math.isinf(m) for m in self._minima):
            raise ValueError(
                "SoftEquivarianceRegularizer.update_weights: call the regulariser (forward) during "
                "training before updating its weights."
            )
        floor = min(self._minima)
        tiny = 1e-300
        ratios = [((floor + tiny) / (m + tiny)) ** self.power for m in self._minima]
        with torch.no_grad():
            self.weights.mul_(
                torch.tensor(ratios, dtype=self.weights.dtype, device=self.weights.device)
            )
        self._minima = [math.inf] * len(self.names)
        return {n: float(w) for n, w in zip(self.names, self.weights)}
