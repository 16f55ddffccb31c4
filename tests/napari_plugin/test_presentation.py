"""What the labelling widget shows, computed without Qt."""

from __future__ import annotations

import numpy as np
from cryoal_napari._presentation import (
    CROP_GAP,
    candidate_line,
    crop_pixels,
    crop_zoom,
    cube_edges,
    projection_display,
    train_epochs,
)

from cryoal.project.session import Candidate


def _candidate(**kw) -> Candidate:  # noqa: ANN003
    base = dict(rank=3, candidate_id="TS_01:000007", score=0.25, predicted_class="ring",
                tomo_id="TS_01", z=1.0, y=2.0, x=3.0, label=None)  # fmt: skip
    return Candidate(**{**base, **kw})


def test_crop_shows_three_slices_at_a_shared_contrast_with_white_gaps() -> None:
    box = 8
    planes = {name: np.full((box, box), v, np.float32) for name, v in
              (("xy", 0.0), ("xz", 1.0), ("yz", 2.0))}  # fmt: skip
    planes["xy"][0, 0] = np.nan  # outside the tomogram: the darkest grey
    pixels = crop_pixels(planes, box)
    zoom = crop_zoom(box)
    assert pixels.shape == (box * zoom, (3 * box + 2 * CROP_GAP) * zoom)
    assert pixels.dtype == np.uint8 and pixels.flags.c_contiguous
    assert pixels[0, 0] == 0 and pixels[0, (2 * box + 2 * CROP_GAP) * zoom] == 255
    assert (pixels[:, box * zoom : (box + CROP_GAP) * zoom] == 255).all()  # a white gap
    assert 0 < pixels[0, (box + CROP_GAP) * zoom] < 255  # the middle slice, mid-grey


def test_the_candidate_line_shows_the_models_three_likeliest_classes() -> None:
    probs = {"ring": 0.6, "barrel": 0.3, "cap": 0.07, "rod": 0.03}
    line = candidate_line(_candidate(), probs)
    assert line == ("<b>TS_01:000007</b>  rank 3  score 0.25  label <b>-</b><br>"
                    "model: ring 0.60 · barrel 0.30 · cap 0.07")  # fmt: skip
    assert "predicted ring" in candidate_line(_candidate(score=float("nan")), None)
    assert "score -" in candidate_line(_candidate(score=float("nan")), None)


def test_cube_edges_and_train_epochs() -> None:
    edges = cube_edges(np.zeros(3), np.array([1.0, 2.0, 3.0]))
    assert len(edges) == 12
    lengths = sorted(float(np.linalg.norm(e[1] - e[0])) for e in edges)
    assert lengths == [1.0] * 4 + [2.0] * 4 + [3.0] * 4
    assert train_epochs({"epochs": 7, "teacher_preset": "tiny"}) == 7
    assert train_epochs({"no_such_field": 1}) == 0  # the job's own count is shown instead


def test_the_3d_projection_follows_the_particles_polarity_with_its_own_contrast() -> None:
    rng = np.random.default_rng(0)
    volume = rng.normal(0.0, 1.0, (40, 32, 32)).astype(np.float32)
    rendering, (lo, hi) = projection_display(volume, "bright")
    assert rendering == "mip"
    # a ray's maximum of 40 noise voxels sits near +2.2 sigma: far above a slice's 99.5 %
    # percentile would saturate nothing, the slice's 1 % (-2.3) would wash it out
    assert 1.0 < lo < hi < 4.0
    rendering, (lo, hi) = projection_display(volume, "dark")
    assert rendering == "minip" and -4.0 < lo < hi < -1.0
    volume[:] = np.nan
    assert projection_display(volume, "dark") == ("minip", (0.0, 1.0))
