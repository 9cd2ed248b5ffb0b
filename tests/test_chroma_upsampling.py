"""Guided-filter refinement of upsampled chroma (napari_colorize.chroma_upsampling)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from napari_colorize.chroma_upsampling import box_mean, guided_ab, halo_rows, strip_bounds


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def blurred_step(height=40, width=60, edge=30, blur=8):
    """L steps from 30 to 70 at column ``edge``; ab steps there too but ramps
    over ``blur`` columns either side, as bilinear upsampling of 1/4-resolution
    chroma leaves it."""
    lightness = torch.full((height, width), 30.0)
    lightness[:, edge:] = 70.0
    x = torch.arange(width, dtype=torch.float32)
    ramp = ((x - edge + blur) / (2 * blur)).clamp(0, 1)  # 0 left, 1 right
    ab = torch.stack([-40 + 80 * ramp, 20 - 40 * ramp])[:, None, :].expand(2, height, width).contiguous()
    truth = torch.stack([torch.where(x < edge, -40.0, 40.0), torch.where(x < edge, 20.0, -20.0)])[:, None, :].expand(2, height, width)
    return ab, lightness, truth


def test_box_mean_counts_only_pixels_inside():
    values = torch.ones(1, 1, 7, 5)
    assert torch.allclose(box_mean(values, 3), values)
    ramp = torch.arange(10, dtype=torch.float32).reshape(1, 1, 1, 10).expand(1, 1, 3, 10)
    out = box_mean(ramp, 1)
    assert out[0, 0, 1, 0].item() == pytest.approx(0.5)  # mean of 0, 1
    assert out[0, 0, 1, 5].item() == pytest.approx(5.0)  # mean of 4, 5, 6


@pytest.mark.parametrize("radius", [1, 4, 8])
@pytest.mark.parametrize("eps", [1e-4, 1e-2])
def test_constant_ab_stays_constant(radius, eps):
    generator = torch.Generator().manual_seed(0)
    lightness = torch.rand(50, 70, generator=generator) * 100  # any guide, even noise
    ab = torch.empty(2, 50, 70)
    ab[0], ab[1] = 23.5, -41.0
    # Exactly constant but for float32 rounding in cov = E[I·ab] - E[I]·E[ab]
    # (far below the ~0.5 ab of one uint8 RGB level).
    for blur in (0.0, 2.0):
        out = guided_ab(ab, lightness, radius=radius, eps=eps, guide_blur=blur)
        assert out.shape == ab.shape
        assert torch.allclose(out, ab, atol=0.02)
    out = guided_ab(ab, lightness, radius=radius, eps=eps)  # the defaults
    assert out.shape == ab.shape
    assert torch.allclose(out, ab, atol=0.02)


@pytest.mark.parametrize("guide_blur", [0.0, 2.0])
def test_smooth_ab_on_flat_lightness_nearly_unchanged(guide_blur):
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 96), indexing="ij")
    ab = torch.stack([30 * torch.sin(2 * x + y), -20 + 25 * x * y])
    lightness = torch.full((64, 96), 55.0)
    out = guided_ab(ab, lightness, radius=8, eps=1e-3, guide_blur=guide_blur)
    change = (out - ab).abs()
    # On a flat guide the filter is a box mean of box means of a slowly
    # varying field: nearly unchanged away from the frame's borders
    # (where the windows are one-sided), and still close at them.
    assert change[:, 16:-16, 16:-16].max().item() < 1.0  # ΔE < 1: below a just-noticeable difference
    assert change.mean().item() < 0.5
    assert change.max().item() < 8.0


@pytest.mark.parametrize("radius", [4, 8, 16])
def test_plain_guided_filter_concentrates_a_blurred_step_at_the_edge(radius):
    # The plain guided filter (guide_blur=0) keeps each side's mean colour
    # but takes the cross-edge error down where it is largest, at the edge.
    ab, lightness, truth = blurred_step(blur=4)
    out = guided_ab(ab, lightness, radius=radius, eps=1e-4, guide_blur=0.0)
    before, after = (ab - truth).abs(), (out - truth).abs()
    for column in (29, 30):
        assert after[:, :, column].max() < 0.6 * before[:, :, column].max(), column
    assert torch.all((out[0, :, :30] < 0) & (out[0, :, 30:] > 0))


@pytest.mark.parametrize("radius", [4, 8])
@pytest.mark.parametrize("blur", [4, 8])
def test_guided_upsampling_sharpens_a_blurred_step_at_the_edge_of_lightness(radius, blur):
    # ab ramps across the edge (bilinear upsampling of a 1/4-resolution step);
    # L steps sharply. Fitted against L blurred alike, the colour stops at the edge.
    ab, lightness, truth = blurred_step(blur=blur)
    out = guided_ab(ab, lightness, radius=radius, eps=1e-4, guide_blur=blur / 2)
    before, after = (ab - truth).abs(), (out - truth).abs()
    for column in (28, 29, 30, 31):  # the edge is between 29 and 30
        assert after[:, :, column].max() < 0.4 * before[:, :, column].max(), column
    assert after.mean() < 0.4 * before.mean()
    assert after.max() < 0.5 * before.max()
    # Each side keeps its own colour's sign: nothing bleeds over.
    assert torch.all((out[0, :, :30] < 0) & (out[0, :, 30:] > 0))
    assert torch.all((out[1, :, :30] > 0) & (out[1, :, 30:] < 0))


def test_larger_eps_sharpens_less():
    ab, lightness, truth = blurred_step()
    errors = [(guided_ab(ab, lightness, radius=8, eps=eps, guide_blur=3.0) - truth).abs().mean().item() for eps in (1e-3, 1e-2, 1.0)]
    assert errors[0] < errors[1] < errors[2]


def test_ab_constant_across_an_edge_of_lightness_stays_constant():
    # An edge in L with no edge in colour must not create one.
    ab, lightness, _ = blurred_step()
    ab = torch.empty_like(ab)
    ab[0], ab[1] = 12.0, 30.0
    for blur in (0.0, 2.0):
        assert torch.allclose(guided_ab(ab, lightness, radius=8, eps=1e-4, guide_blur=blur), ab, atol=1e-3)


def test_radius_zero_is_identity():
    ab, lightness, _ = blurred_step()
    assert torch.equal(guided_ab(ab, lightness, radius=0), ab)
    assert torch.equal(guided_ab(ab, lightness, radius=0, halo=(3, 2)), ab[:, 3:-2])


def test_shapes_batched_and_guide_layouts():
    ab, lightness, _ = blurred_step()
    single = guided_ab(ab, lightness, radius=4)
    batched = guided_ab(ab[None], lightness[None, None], radius=4)
    assert batched.shape == (1, *ab.shape)
    assert torch.equal(batched[0], single)
    assert torch.equal(guided_ab(ab, lightness[None], radius=4), single)
    assert single.dtype == torch.float32
    with pytest.raises(ValueError):
        guided_ab(ab, lightness[:, :-1], radius=4)
    with pytest.raises(ValueError):
        guided_ab(ab, lightness, radius=4, halo=(20, 20))


def test_halo_contract():
    assert halo_rows(8, 0.0) == 16
    assert halo_rows(8, 2.0) == halo_rows(8) == 16 + 6  # default guide_blur 2
    assert halo_rows(0, 2.0) == 0
    assert strip_bounds(40, 50, 100, 4, 1.5) == (40 - 13, 50 + 13, (13, 13))
    assert strip_bounds(0, 10, 100, 8, 0.0) == (0, 26, (0, 16))
    assert strip_bounds(40, 50, 100, 8, 0.0) == (24, 66, (16, 16))
    assert strip_bounds(90, 100, 100, 8, 0.0) == (74, 100, (16, 0))
    assert strip_bounds(0, 100, 100, 8, 0.0) == (0, 100, (0, 0))
    assert strip_bounds(40, 50, 100) == (18, 72, (22, 22))  # the defaults: radius 8, guide_blur 2


@pytest.mark.parametrize("radius", [1, 4, 8, 16])
@pytest.mark.parametrize("rows", [1, 7, 32, 250])
@pytest.mark.parametrize("guide_blur", [0.0, 2.0])
def test_strips_with_halo_equal_the_whole_image(radius, rows, guide_blur):
    generator = torch.Generator().manual_seed(radius * 1000 + rows)
    height, width = 90, 41
    lightness = torch.rand(height, width, generator=generator) * 100
    lightness[30:60, 10:30] = 90.0
    ab = 40 * torch.randn(2, height, width, generator=generator)
    whole = guided_ab(ab, lightness, radius=radius, eps=1e-3, guide_blur=guide_blur)
    parts = []
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        e0, e1, halo = strip_bounds(r0, r1, height, radius, guide_blur)
        part = guided_ab(ab[:, e0:e1], lightness[e0:e1], radius=radius, eps=1e-3, halo=halo, guide_blur=guide_blur)
        assert part.shape == (2, r1 - r0, width)
        parts.append(part)
    assert torch.allclose(torch.cat(parts, dim=1), whole, atol=1e-4, rtol=0)


def test_too_small_a_halo_differs():
    # The contract needs 2 * radius rows: half of that is not enough.
    generator = torch.Generator().manual_seed(5)
    lightness = torch.rand(60, 30, generator=generator) * 100
    ab = 40 * torch.randn(2, 60, 30, generator=generator)
    whole = guided_ab(ab, lightness, radius=6, eps=1e-3, guide_blur=0.0)
    part = guided_ab(ab[:, 20 - 6 : 40 + 6], lightness[20 - 6 : 40 + 6], radius=6, eps=1e-3, halo=(6, 6), guide_blur=0.0)
    assert not torch.allclose(part, whole[:, 20:40], atol=1e-4)


def test_default_strips_with_default_halo_equal_the_whole_image():
    # The defaults of guided_ab and strip_bounds agree.
    generator = torch.Generator().manual_seed(11)
    lightness = torch.rand(80, 33, generator=generator) * 100
    ab = 30 * torch.randn(2, 80, 33, generator=generator)
    whole = guided_ab(ab, lightness)
    parts = []
    for r0 in range(0, 80, 16):
        e0, e1, halo = strip_bounds(r0, r0 + 16, 80)
        parts.append(guided_ab(ab[:, e0:e1], lightness[e0:e1], halo=halo))
    assert torch.equal(torch.cat(parts, dim=1), whole)


def test_extreme_lightness_is_an_ordinary_guide_value():
    # Pixels at L = 0 or 100 get a finite ab here (the engine zeroes them afterwards).
    ab, lightness, _ = blurred_step()
    lightness[:, :10] = 0.0
    lightness[:, -10:] = 100.0
    out = guided_ab(ab, lightness)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("edge", [32, 30, 29])  # on a chroma cell boundary, and inside a cell
def test_defaults_stop_colour_at_an_edge_after_bilinear_upsampling_from_quarter_resolution(edge):
    # As in the engine: ab at 1/4 resolution (here the truth averaged over
    # 4x4 cells, a perfect network), upsampled with grid_sample bilinear.
    height, width = 48, 64
    x = torch.arange(width)
    lightness = torch.where(x < edge, 25.0, 80.0).expand(height, width).contiguous()
    truth = torch.stack([torch.where(x < edge, 50.0, -10.0), torch.where(x < edge, -30.0, 45.0)])[:, None, :].expand(2, height, width)
    low = torch.nn.functional.avg_pool2d(truth[None], 4)
    ab = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)[0]
    out = guided_ab(ab, lightness)
    near = slice(edge - 4, edge + 4)
    before = (ab - truth)[:, :, near].norm(dim=0)
    after = (out - truth)[:, :, near].norm(dim=0)
    # Measured: the error near the edge drops 6-10x (the plain guided
    # filter, guide_blur=0, only about 2x).
    assert after.mean() < 0.25 * before.mean()
    assert after.max() < 0.25 * before.max()


def test_colorize_with_guided_upsampling_streams_strip_by_strip(natural):
    """The option reaches the engine, changes the result, and does not depend on the strip height."""
    import numpy as np
    from helpers import smooth_frame

    from napari_colorize import colorize
    from napari_colorize.engine import colorize_strips

    frame = smooth_frame((130, 150), seed=3)
    guided = colorize(frame, model=natural, device="cpu", chroma_upsampling="guided")
    assert not np.array_equal(guided, colorize(frame, model=natural, device="cpu"))
    for rows in (1, 17, 64):
        strips = colorize_strips(frame, model=natural, device="cpu", chroma_upsampling="guided", strip_rows=rows)
        np.testing.assert_array_equal(np.concatenate([rgb for *_, rgb in strips]), guided)
