"""Multi-grid patching (identity round trip, boundary handling, hand-assembled patches) and the
MG-TFNO forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from factorch.models import (
    MGTFNO,
    TFNO,
    MGTFNOConfig,
    MultigridPatching,
    model_config,
    model_from_config,
)

BOUNDARIES = ["periodic", "replicate", "reflect", "zeros"]


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(
    ("dims", "levels", "n"), [(1, 0, 16), (1, 2, 32), (2, 1, 16), (2, 2, 32), (3, 1, 8)]
)
def test_patch_then_stitch_is_the_identity_exactly(boundary, dims, levels, n) -> None:
    mg = MultigridPatching(levels, 0.125, boundary)
    x = torch.randn(2, 3, *([n] * dims), generator=torch.Generator().manual_seed(0))
    patches = mg.patch(x)
    side, p, per = mg.geometry(x.shape[2:])
    assert patches.shape == (2 * per**dims, 3 * (levels + 1), *([side + 2 * p] * dims))
    assert torch.equal(mg.stitch(patches[:, :3], 2, x.shape[2:]), x)
    # Any contiguous range of patches equals the same rows of the full set.
    assert torch.equal(mg.patch(x, slice(1, 3)), patches[1:3])


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(
    ("dims", "levels", "n"), [(1, 0, 16), (1, 2, 32), (2, 1, 16), (2, 2, 32), (3, 1, 8)]
)
def test_blended_stitching_of_the_patches_is_the_identity(boundary, dims, levels, n) -> None:
    mg = MultigridPatching(levels, 0.125, boundary, stitching="blend")
    x = torch.randn(2, 3, *([n] * dims), generator=torch.Generator().manual_seed(0))
    x = x.double()
    stitched = mg.stitch(mg.patch(x)[:, :3], 2, x.shape[2:])
    torch.testing.assert_close(stitched, x, rtol=0, atol=1e-14)


def _ramp_window(width: int, p: int) -> torch.Tensor:
    """1 in the middle, (k + 1/2) / 2p over the 2p points shared with each neighbour."""
    w = torch.ones(width, dtype=torch.float64)
    for k in range(2 * p):
        w[k] = w[width - 1 - k] = (k + 0.5) / (2 * p)
    return w


def _hand_blend_2d(out: torch.Tensor, batch: int, n: int, side: int, p: int) -> torch.Tensor:
    """Periodic overlap-add of patch outputs (row-major patches per sample) weighted by the
    ramp window, divided by the summed weights."""
    per = n // side
    w1 = _ramp_window(side + 2 * p, p)
    w2 = w1[:, None] * w1[None, :]
    acc = torch.zeros(batch, out.shape[1], n, n, dtype=out.dtype)
    norm = torch.zeros(n, n, dtype=out.dtype)
    for b in range(batch):
        for i in range(per):
            for j in range(per):
                rows = (i * side - p + torch.arange(side + 2 * p)) % n
                cols = (j * side - p + torch.arange(side + 2 * p)) % n
                acc[b][:, rows[:, None], cols[None, :]] += w2 * out[b * per * per + i * per + j]
                if b == 0:
                    norm[rows[:, None], cols[None, :]] += w2
    return acc / norm


@pytest.mark.parametrize("boundary", ["periodic", "replicate"])
def test_blended_stitching_equals_the_hand_weighted_overlap_add_in_1d(boundary) -> None:
    # 16 points, 2 patches of 8, p = 2: patch i covers i * 8 - 2 .. i * 8 + 9; outside the
    # domain a non-periodic overhang is dropped, a periodic one wraps around.
    mg = MultigridPatching(1, 0.125, boundary, stitching="blend")
    out = torch.randn(4, 2, 12, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    w = _ramp_window(12, 2)
    acc = torch.zeros(2, 2, 16, dtype=torch.float64)
    norm = torch.zeros(16, dtype=torch.float64)
    for b in range(2):
        for i in range(2):
            for t in range(12):
                g = i * 8 - 2 + t
                if boundary == "periodic":
                    g %= 16
                elif not 0 <= g < 16:
                    continue
                acc[b, :, g] += w[t] * out[2 * b + i, :, t]
                if b == 0:
                    norm[g] += w[t]
    torch.testing.assert_close(mg.stitch(out, 2, (16,)), acc / norm, rtol=0, atol=1e-14)
    # without padding there is nothing to blend: the same as cropping
    plain = MultigridPatching(1, 0.0, boundary, stitching="blend")
    crop = MultigridPatching(1, 0.0, boundary)
    torch.testing.assert_close(
        plain.stitch(out[..., 2:10], 2, (16,)), crop.stitch(out[..., 2:10], 2, (16,))
    )


def _hand_patches(x: torch.Tensor, levels: int, p: int, mode: str) -> torch.Tensor:
    """The definition, written out for 2-D: patch (i, j) of side P plus p from each side; level l
    = the 2^l average-pooled field, a window of the same side centred on the patch."""
    n = x.shape[-1]
    side = n // 2**levels
    width = side + 2 * p
    out = []
    for b in range(x.shape[0]):
        for i in range(2**levels):
            for j in range(2**levels):
                chans = []
                for level in range(levels + 1):
                    s = 2**level
                    field = F.avg_pool2d(x[b : b + 1], s) if level else x[b : b + 1]
                    big = 64
                    pad_mode = {"periodic": "circular", "replicate": "replicate"}[mode]
                    padded = (
                        F.pad(field, (big, big, big, big), mode=pad_mode)
                        if mode != "periodic"
                        else field.repeat(1, 1, 5, 5)
                    )
                    origin = big if mode != "periodic" else 2 * field.shape[-1]
                    ci = (i * side + side / 2) / s
                    cj = (j * side + side / 2) / s
                    r0, c0 = int(origin + ci - width / 2), int(origin + cj - width / 2)
                    chans.append(padded[0, :, r0 : r0 + width, c0 : c0 + width])
                out.append(torch.cat(chans))
    return torch.stack(out)


@pytest.mark.parametrize("mode", ["periodic", "replicate"])
@pytest.mark.parametrize("levels", [1, 2])
def test_patches_equal_the_hand_assembled_definition(mode, levels) -> None:
    x = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mg = MultigridPatching(levels, 0.125, mode)
    torch.testing.assert_close(mg.patch(x), _hand_patches(x, levels, 4, mode), rtol=0, atol=1e-14)


def test_non_periodic_padding_never_wraps_around() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., -1] = 1.0  # only the right edge is non-zero
    patches = MultigridPatching(1, 0.125, "replicate").patch(x)
    assert float(patches[0, 0, :, :2].abs().max()) == 0.0  # left padding of the top-left patch
    wrapped = MultigridPatching(1, 0.125, "periodic").patch(x)
    assert float(wrapped[0, 0, :, :2].abs().max()) == 1.0  # the torus brings the right edge in


def _small_mg(stitching: str) -> tuple[MGTFNO, torch.Tensor]:
    """A one-level float64 MG-TFNO with 4-point patch padding and a 32^2 batch of two."""
    model = MGTFNO(
        1,
        1,
        (6, 6),
        levels=1,
        patch_padding=0.125,
        hidden_channels=6,
        global_coordinates=False,
        stitching=stitching,
        generator=torch.Generator().manual_seed(2),
        dtype=torch.float64,
    )
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return model, x


def test_mg_tfno_forward_equals_the_operator_on_hand_assembled_patches() -> None:
    model, x = _small_mg("crop")
    patches = _hand_patches(x, 1, 4, "periodic")
    out = model.operator(patches)[..., 4:-4, 4:-4]  # (8, 1, 16, 16): crop the padding
    stitched = torch.zeros_like(x)
    for b in range(2):
        for i in range(2):
            for j in range(2):
                stitched[b, :, 16 * i : 16 * i + 16, 16 * j : 16 * j + 16] = out[4 * b + 2 * i + j]
    with torch.no_grad():
        torch.testing.assert_close(model(x), stitched, rtol=1e-12, atol=1e-12)


def test_mg_tfno_blended_forward_equals_the_hand_blended_operator_output() -> None:
    model, x = _small_mg("blend")
    with torch.no_grad():
        out = model.operator(_hand_patches(x, 1, 4, "periodic"))
        torch.testing.assert_close(
            model(x), _hand_blend_2d(out, 2, 32, 16, 4), rtol=1e-12, atol=1e-12
        )


def test_mg_tfno_without_levels_or_padding_is_the_tfno_it_wraps() -> None:
    # issue 12 (MG-TFNO not training on Navier--Stokes): with no context level and no patch
    # padding the multi-grid path must reduce exactly to the joint-Tucker TFNO it wraps.
    # (MG-TFNO keeps spectral_lr_scale=1 by default, TFNO with Tucker takes 3: fix it.)
    kw = dict(
        hidden_channels=6, format="tucker", ratio=0.05, joint=True, spectral_lr_scale=1.0,
        dtype=torch.float64,
    )  # fmt: skip
    mg = MGTFNO(
        1,
        1,
        (6, 6),
        levels=0,
        patch_padding=0.0,
        global_coordinates=False,
        generator=torch.Generator().manual_seed(5),
        **kw,
    )
    tfno = TFNO(1, 1, (6, 6), generator=torch.Generator().manual_seed(5), **kw)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mg(x), tfno(x), rtol=0, atol=0)


def test_every_mg_tfno_parameter_gets_a_finite_nonzero_gradient() -> None:
    model = MGTFNO(
        1,
        1,
        (6, 6),
        levels=1,
        patch_padding=0.125,
        hidden_channels=6,
        format="tucker",
        ratio=0.05,
        joint=True,
        generator=torch.Generator().manual_seed(7),
        dtype=torch.float64,
    )
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    model(x).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert bool(torch.isfinite(param.grad).all()), name
        assert float(param.grad.norm()) > 0, name


@pytest.mark.parametrize("periodic", [True, False])
def test_patches_know_where_they_lie_in_the_domain(periodic) -> None:
    # issue 12: with only patch-local coordinates, a field that repeats with the patch period
    # gave every patch the same input, so the output repeated too and a position-dependent map
    # (Navier--Stokes with a fixed forcing) could not be learned (relative L2 stayed at 0.93).
    model = MGTFNO(
        1,
        1,
        (4, 4),
        levels=1,
        patch_padding=0.0,
        hidden_channels=4,
        periodic=periodic,
        generator=torch.Generator().manual_seed(9),
        dtype=torch.float64,
    )
    tile = torch.randn(
        1, 1, 16, 16, generator=torch.Generator().manual_seed(10), dtype=torch.float64
    )
    x = tile.repeat(1, 1, 2, 2)  # every 16 x 16 patch and its context see the same values
    with torch.no_grad():
        out = model(x)
        shifted = torch.roll(out, shifts=(16, 16), dims=(2, 3))
    assert float((out - shifted).abs().max()) > 1e-6
    if not periodic:
        return  # non-periodic context padding already differs between edge patches
    local = MGTFNO(
        1,
        1,
        (4, 4),
        levels=1,
        patch_padding=0.0,
        hidden_channels=4,
        periodic=periodic,
        global_coordinates=False,
        generator=torch.Generator().manual_seed(9),
        dtype=torch.float64,
    )
    with torch.no_grad():
        out = local(x)
    torch.testing.assert_close(out, torch.roll(out, shifts=(16, 16), dims=(2, 3)))


def test_configs_saved_before_global_coordinates_load_without_them() -> None:
    model = MGTFNO(1, 1, (4, 4), hidden_channels=4, global_coordinates=False)
    data = model.config.to_json()
    assert MGTFNOConfig.from_json(data) == model.config
    del data["global_coordinates"]
    assert MGTFNOConfig.from_json(data).global_coordinates is False
    assert MGTFNO(1, 1, (4, 4), hidden_channels=4).config.operator.in_channels == (1 + 4) * 2


def test_configs_saved_before_stitching_load_with_cropping() -> None:
    model = MGTFNO(1, 1, (4, 4), hidden_channels=4, stitching="crop")
    data = model.config.to_json()
    del data["stitching"]
    old = MGTFNOConfig.from_json(data)
    assert old.stitching == "crop"
    assert model_from_config({"model": "mg-tfno", "config": data}).patching.stitching == "crop"
    blended = MGTFNO(1, 1, (4, 4), hidden_channels=4)
    assert blended.config.stitching == "blend"  # the default since issue 12's runs
    assert MGTFNOConfig.from_json(blended.config.to_json()) == blended.config


def test_configs_saved_with_the_old_default_padding_keep_it() -> None:
    old = MGTFNO(1, 1, (4, 4), hidden_channels=4, patch_padding=0.0625)  # the default before
    data = old.config.to_json()
    assert data["patch_padding"] == 0.0625  # always saved, so a changed default cannot move it
    loaded = model_from_config({"model": "mg-tfno", "config": data})
    assert loaded.config == old.config and loaded.config.patch_padding == 0.0625
    new = MGTFNO(1, 1, (4, 4), hidden_channels=4)
    assert new.config.patch_padding == 0.125  # the default since issue 12's runs (mgns)
    assert new.patching.padding == old.patching.padding * 2


def test_patch_by_patch_inference_equals_all_at_once_and_config_round_trips() -> None:
    kw = dict(
        levels=1, hidden_channels=4, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    whole = MGTFNO(1, 1, (6, 6), **kw)
    chunked = MGTFNO(1, 1, (6, 6), patch_batch=3, **kw)
    chunked.load_state_dict(whole.state_dict())
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(chunked(x), whole(x), rtol=1e-12, atol=1e-12)
    rebuilt = model_from_config(model_config(chunked), dtype=torch.float64)
    assert rebuilt.config == chunked.config
    non_periodic = MGTFNO(1, 1, (4, 4), periodic=False, hidden_channels=4, format="dense")
    assert non_periodic.config.boundary == "replicate"


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: MultigridPatching(-1),
            ValueError,
            r"MultigridPatching: levels must be an int >= 0",
        ),
        (
            lambda: MultigridPatching(1, 0.7),
            ValueError,
            r"MultigridPatching: padding must be a fraction",
        ),
        (
            lambda: MultigridPatching(1, boundary="mirror"),
            ValueError,
            r"MultigridPatching: boundary must be one of",
        ),
        (
            lambda: MultigridPatching(1).patch(torch.zeros(1, 1, 12, 12)),
            ValueError,
            r"MultigridPatching: 1 level\(s\) need a grid side divisible by 8",
        ),
        (
            lambda: MultigridPatching(1).patch(torch.zeros(1, 1, 16, 8)),
            ValueError,
            r"MultigridPatching: the grid must have equal sides",
        ),
        (
            lambda: MultigridPatching(1).patch(None),
            ValueError,
            r"MultigridPatching: fields must be a \(batch, channels, \*grid\) tensor",
        ),
        (
            lambda: MultigridPatching(1).patch(torch.zeros(1, 1, 16, 16, dtype=torch.int32)),
            TypeError,
            r"MultigridPatching: fields must be a real floating-point tensor",
        ),
        (
            lambda: MultigridPatching(1, stitching="average"),
            ValueError,
            r"MultigridPatching: stitching must be one of \('crop', 'blend'\); got 'average'",
        ),
        (
            lambda: MGTFNO(1, 1, 4, stitching="sum"),
            ValueError,
            r"MGTFNO: stitching must be one of \('crop', 'blend'\); got 'sum'",
        ),
        (lambda: MGTFNO(1, 1, 4, levels=-2), ValueError, r"MGTFNO: levels must be an int >= 0"),
        (
            lambda: MGTFNO(1, 1, 4, global_coordinates=1),
            TypeError,
            r"MGTFNO: global_coordinates must be a bool; got int",
        ),
        (
            lambda: MGTFNO(1, 1, (4, 4), hidden_channels=4, format="dense")(
                torch.zeros(1, 2, 16, 16)
            ),
            ValueError,
            r"MGTFNO: input must have shape \(batch, 1, 2 grid sizes\)",
        ),
        (
            lambda: MGTFNO(1, 1, (4, 4), hidden_channels=4)(torch.zeros(1, 1, 12, 12)),
            ValueError,
            r"MGTFNO: 1 level\(s\) need a grid side divisible by 8",
        ),
        (
            lambda: MGTFNO(1, 1, (12, 12), hidden_channels=4, patch_padding=0.0625)(
                torch.zeros(1, 1, 16, 16)  # patches of 8 + 2 * 1 = 10 points
            ),
            ValueError,
            r"MGTFNO: 12 modes along spatial dimension 0 need a grid of at least 12 points",
        ),
    ],
)
def test_bad_configurations(make, exc, match) -> None:
    with pytest.raises(exc, match=match):
        make()


def test_mg_tfno_takes_tfnos_tucker_lr_scale_and_old_configs_keep_theirs() -> None:
    # issue 12 (helper mg120): MG-TFNO's default spectral_lr_scale is TFNO's (3 with Tucker,
    # 1 otherwise); it was 1 before. Saved configs always carry the scale, so a config saved
    # with the old default loads with it.
    assert MGTFNO(1, 1, (4, 4), hidden_channels=4).config.operator.spectral_lr_scale == 3.0
    cp = MGTFNO(1, 1, (4, 4), hidden_channels=4, format="cp", ratio=0.5)
    assert cp.config.operator.spectral_lr_scale == 1.0
    old = MGTFNO(1, 1, (4, 4), hidden_channels=4, spectral_lr_scale=1.0)  # the old default
    data = old.config.to_json()
    assert data["operator"]["spectral_lr_scale"] == 1.0
    loaded = model_from_config({"model": "mg-tfno", "config": data})
    assert loaded.config == old.config and loaded.config.operator.spectral_lr_scale == 1.0
