"""Guided-filter refinement of upsampled chroma (napari_colorize.chroma_upsampling)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from napari_colorize.chroma_upsampling import box_mean, guided_ab, halo_rows, strip_bounds  # noqa: E402


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
    out = guided_ab(ab, lightness, radius=radius, eps=eps)
    assert out.shape == ab.shape
    assert torch.allclose(out, ab, atol=1e-3)


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
    out = guided_ab(ab, lightness, radius=radius, eps=1e-4)
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
    assert halo_rows(8) == 16
    assert halo_rows(8, 2.0) == 16 + 6
    assert halo_rows(0, 2.0) == 0
    assert strip_bounds(40, 50, 100, 4, 1.5) == (40 - 13, 50 + 13, (13, 13))
    assert strip_bounds(0, 10, 100, 8) == (0, 26, (0, 16))
    assert strip_bounds(40, 50, 100, 8) == (24, 66, (16, 16))
    assert strip_bounds(90, 100, 100, 8) == (74, 100, (16, 0))
    assert strip_bounds(0, 100, 100, 8) == (0, 100, (0, 0))


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
    whole = guided_ab(ab, lightness, radius=6, eps=1e-3)
    part = guided_ab(ab[:, 20 - 6 : 40 + 6], lightness[20 - 6 : 40 + 6], radius=6, eps=1e-3, halo=(6, 6))
    assert not torch.allclose(part, whole[:, 20:40], atol=1e-4)
