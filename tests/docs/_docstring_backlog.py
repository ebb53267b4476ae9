"""Public docstrings that lack sections the standard asks for (see test_docstring_sections.py).

Each entry: the public name and the sections its docstring still lacks, with the reason when
there is one beyond time (issue 19 fixed the most-used packages first). Fix a docstring, then
delete its entry: the test fails until then, so the list only shrinks.
"""

from __future__ import annotations

BACKLOG: dict[str, tuple[str, ...]] = {
    "factorch.adapters.AdaptedLayer": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.adapters.Adapter": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.adapters.left.LeftLayer": (
        "Raises",
    ),  # validates nothing yet: inject checks the base layer and the config
    "factorch.adapters.tlora.TLoraLayer": (
        "Raises",
    ),  # validates nothing yet: inject checks the base layer and the config
    "factorch.adapters.tlora.identity_trm_cores": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.adapters.tlora.ring_tensor": (
        "Raises",
    ),  # file edited by another helper during issue 19
    "factorch.adapters.tt.TTLayer": (
        "Raises",
    ),  # validates nothing yet: inject checks the base layer and the config
    "factorch.adapters.tucker.TuckerLayer": (
        "Raises",
    ),  # validates nothing yet: inject checks the base layer and the config
    "factorch.datasets.pde.neumann_grf": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.datasets.pde.periodic_grf": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.distributed.cp": (
        "Example",
    ),  # an example needs a torch.distributed process group (torchrun)
    "factorch.distributed.cp_als": (
        "Example",
    ),  # an example needs a torch.distributed process group (torchrun)
    "factorch.distributed.hosvd": (
        "Example",
    ),  # an example needs a torch.distributed process group (torchrun)
    "factorch.distributed.init": (
        "Example",
    ),  # an example needs a torch.distributed process group (torchrun)
    "factorch.distributed.read_dense_shard": (
        "Example",
    ),  # an example needs a torch.distributed process group (torchrun)
    "factorch.distributed.read_sparse_shard": (
        "Example",
    ),  # an example needs a torch.distributed process group (torchrun)
    "factorch.distributed.redistribute": (
        "Example",
    ),  # an example needs a torch.distributed process group (torchrun)
    "factorch.nn.formats.chain_contract": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.formats.dense_init_std": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.formats.gaussian": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.formats.keep_mask": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.formats.known_size": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.formats.orthonormal": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.formats.row_digits": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.formats.unregister_format": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.ordered_layers": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.spectral.count_real": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.nn.spectral.kept_frequencies": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.plot.figure_to_png": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.plot.normalized_cp_factors": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.symmetry.default_irreps_out": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.testing.strategies.cp_tensors": (
        "Args",
        "Returns",
        "Raises",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.testing.strategies.float_dtypes": (
        "Returns",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.testing.strategies.seeds": (
        "Returns",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.testing.strategies.shapes": (
        "Args",
        "Returns",
        "Raises",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.testing.strategies.tr_tensors": (
        "Args",
        "Returns",
        "Raises",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.testing.strategies.tt_matrices": (
        "Args",
        "Returns",
        "Raises",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.testing.strategies.tt_tensors": (
        "Args",
        "Returns",
        "Raises",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.testing.strategies.tucker_tensors": (
        "Args",
        "Returns",
        "Raises",
        "Example",
    ),  # a strategy's example would call .example(), which hypothesis warns against
    "factorch.train.NormalizedOperator": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
    "factorch.train.gradients": (
        "Raises",
    ),  # validates nothing yet: add checks (and pinned messages), then Raises
}
