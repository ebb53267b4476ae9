"""Symmetry as tensor structure: irreps, tensor products, projectors, frames, Lie groups.

* Irreps of O(3) and real spherical harmonics in e3nn's basis (:class:`Irreps`,
  :func:`spherical_harmonics`), exact Clebsch--Gordan coefficients, Wigner-3j symbols and
  Wigner-D matrices, conversions to and from e3nn's layouts (e3nn is never imported at runtime,
  except by :func:`irreps_to_e3nn`).
* Tensor products: the full Clebsch--Gordan product with per-path weights
  (:func:`cg_tensor_product`), the Gaunt product through the 2-D Fourier basis or an S² grid
  (:func:`gaunt_tensor_product`), and the :func:`expressivity` of each.
* Equivariant projectors for groups given by Lie-algebra and discrete generators
  (:func:`equivariant_projector`) and the soft-equivariance regulariser with automatic
  per-symmetry weights (:class:`SoftEquivarianceRegularizer`).
* Frame averaging for point clouds (:class:`FrameAveraging`).
* Lie group utilities: polar/Cartan decompositions, Haar sampling, Monte-Carlo lifting and group
  convolution.
"""

from ._cg_product import ClebschGordanTensorProduct as ClebschGordanTensorProduct
from ._cg_product import TensorProductPath as TensorProductPath
from ._cg_product import cg_paths as cg_paths
from ._cg_product import cg_tensor_product as cg_tensor_product
from ._cg_product import default_irreps_out as default_irreps_out
from ._e3nn import e3nn_layout_irreps as e3nn_layout_irreps
from ._e3nn import from_e3nn_layout as from_e3nn_layout
from ._e3nn import irreps_from_e3nn as irreps_from_e3nn
from ._e3nn import irreps_to_e3nn as irreps_to_e3nn
from ._e3nn import to_e3nn_layout as to_e3nn_layout
from ._expressivity import Expressivity as Expressivity
from ._expressivity import ExpressivityOperation as ExpressivityOperation
from ._expressivity import expressivity as expressivity
from ._frame_averaging import FrameAveraging as FrameAveraging
from ._frame_averaging import FrameDegeneracyWarning as FrameDegeneracyWarning
from ._frame_averaging import PCAFrames as PCAFrames
from ._frame_averaging import pca_frames as pca_frames
from ._gaunt import GauntMethod as GauntMethod
from ._gaunt import GauntTensorProduct as GauntTensorProduct
from ._gaunt import gaunt_path_weight as gaunt_path_weight
from ._gaunt import gaunt_tensor_product as gaunt_tensor_product
from ._group_conv import group_convolution as group_convolution
from ._group_conv import lift as lift
from ._haar import GroupSample as GroupSample
from ._haar import HaarGroup as HaarGroup
from ._haar import haar_orthogonal as haar_orthogonal
from ._haar import haar_sample as haar_sample
from ._haar import log_haar_density as log_haar_density
from ._irreps import Irrep as Irrep
from ._irreps import Irreps as Irreps
from ._irreps import MulIrrep as MulIrrep
from ._lie import CartanDecomposition as CartanDecomposition
from ._lie import PolarDecomposition as PolarDecomposition
from ._lie import cartan_decomposition as cartan_decomposition
from ._lie import lie_chart as lie_chart
from ._lie import lie_chart_inverse as lie_chart_inverse
from ._lie import polar_decomposition as polar_decomposition
from ._lie import rotation_log as rotation_log
from ._lie import spd_exp as spd_exp
from ._lie import spd_log as spd_log
from ._projectors import EquivariantProjector as EquivariantProjector
from ._projectors import equivariant_projector as equivariant_projector
from ._representations import MatrixGroup as MatrixGroup
from ._representations import RepBlock as RepBlock
from ._representations import Representation as Representation
from ._representations import axial_rotation_group as axial_rotation_group
from ._representations import rotation_group as rotation_group
from ._soft_equivariance import SoftEquivarianceRegularizer as SoftEquivarianceRegularizer
from ._spherical_harmonics import SHNormalization as SHNormalization
from ._spherical_harmonics import spherical_harmonics as spherical_harmonics
from ._wigner import clebsch_gordan as clebsch_gordan
from ._wigner import irreps_wigner_D as irreps_wigner_D
from ._wigner import so3_generators as so3_generators
from ._wigner import wigner_3j as wigner_3j
from ._wigner import wigner_D as wigner_D

__all__ = [
    "CartanDecomposition",
    "ClebschGordanTensorProduct",
    "EquivariantProjector",
    "Expressivity",
    "ExpressivityOperation",
    "FrameAveraging",
    "FrameDegeneracyWarning",
    "GauntMethod",
    "GauntTensorProduct",
    "GroupSample",
    "HaarGroup",
    "Irrep",
    "Irreps",
    "MatrixGroup",
    "MulIrrep",
    "PCAFrames",
    "PolarDecomposition",
    "RepBlock",
    "Representation",
    "SHNormalization",
    "SoftEquivarianceRegularizer",
    "TensorProductPath",
    "axial_rotation_group",
    "cartan_decomposition",
    "cg_paths",
    "cg_tensor_product",
    "clebsch_gordan",
    "default_irreps_out",
    "e3nn_layout_irreps",
    "equivariant_projector",
    "expressivity",
    "from_e3nn_layout",
    "gaunt_path_weight",
    "gaunt_tensor_product",
    "group_convolution",
    "haar_orthogonal",
    "haar_sample",
    "irreps_from_e3nn",
    "irreps_to_e3nn",
    "irreps_wigner_D",
    "lie_chart",
    "lie_chart_inverse",
    "lift",
    "log_haar_density",
    "pca_frames",
    "polar_decomposition",
    "rotation_group",
    "rotation_log",
    "so3_generators",
    "spd_exp",
    "spd_log",
    "spherical_harmonics",
    "to_e3nn_layout",
    "wigner_3j",
    "wigner_D",
]
