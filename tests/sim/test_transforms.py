"""Rotations: uniform on SO(3), about the centre of mass, mass-preserving, correct handedness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cryoal.sim.subtomograms import Simulator, SubtomogramParams
from cryoal.sim.templates import load_templates, make_template, phantom_templates
from cryoal.sim.transforms import TemplateBank, rotation_matrices_zyx


def _random_rotations(n: int, seed: int) -> np.ndarray:
    return Rotation.random(n, random_state=np.random.default_rng(seed)).as_quat()


def test_rotation_preserves_template_mass(shared_structures) -> None:
    templates = load_templates(shared_structures / "maps_10A", 10.0) + phantom_templates(10)
    bank = TemplateBank(templates)
    n = 6
    classes = np.repeat(np.arange(len(bank)), n)
    quats = _random_rotations(classes.size, 0)
    centres = 20.0 + np.random.default_rng(1).uniform(-0.5, 0.5, size=(classes.size, 3))
    dens, _ = bank.render(classes, rotation_matrices_zyx(quats), centres, (40, 40, 40))
    masses = np.array([t.mass for t in templates])[classes]
    np.testing.assert_allclose(dens.sum(axis=(1, 2, 3)), masses, rtol=0.01)


def test_rendering_matches_an_independent_affine_resampling() -> None:
    templates = phantom_templates(3)
    bank = TemplateBank(templates)
    quats = _random_rotations(3, 5)
    rot = rotation_matrices_zyx(quats)
    centres = np.array([[16.2, 15.7, 16.4], [15.5, 16.0, 16.3], [16.0, 16.0, 16.0]])
    dens, _ = bank.render(np.arange(3), rot, centres, (32, 32, 32))
    for k in range(3):
        # output p samples the template at R^T (p - c) + c_t
        matrix = rot[k].T
        offset = bank.centres[k] - matrix @ centres[k]
        ref = ndimage.affine_transform(
            bank.stack[k, 0].numpy().astype(np.float64),
            matrix,
            offset,
            output_shape=(32, 32, 32),
            order=1,
        )
        np.testing.assert_allclose(dens[k], ref, atol=1e-3 * ref.max())


def test_quaternion_convention_rotates_x_towards_y_for_a_quarter_turn_about_z() -> None:
    z, y, x = np.indices((25, 25, 25)) - 12.0
    blob = np.exp(-(x**2 + y**2 + z**2) / 8.0) + 0.5 * np.exp(-((x - 7) ** 2 + y**2 + z**2) / 2.0)
    bank = TemplateBank([make_template("arrow", blob, 10.0)])
    c = bank.centres[0]
    quarter_z = Rotation.from_euler("z", 90, degrees=True).as_quat()[None]
    dens = bank.render([0], rotation_matrices_zyx(quarter_z), c[None], (bank.size,) * 3)[0][0]
    i = np.round(c).astype(int)
    # The small blob sat 7 voxels along +x; after +90° about z (scipy, right-handed) it is at +y.
    plus_y, minus_y = dens[i[0], i[1] + 7, i[2]], dens[i[0], i[1] - 7, i[2]]
    plus_x, minus_x = dens[i[0], i[1], i[2] + 7], dens[i[0], i[1], i[2] - 7]
    assert plus_y > 10 * max(minus_y, plus_x, minus_x)


def test_orientations_are_uniform_on_so3_and_classes_are_balanced() -> None:
    sim = Simulator(phantom_templates(7), SubtomogramParams(), seed=4)
    draw = sim.draw(np.arange(3500))
    mats = Rotation.from_quat(draw["quaternion"]).as_matrix()
    axis = mats[:, :, 2]  # image of e_z: uniform on the sphere for uniform rotations
    assert np.abs(axis.mean(axis=0)).max() < 0.05
    np.testing.assert_allclose(axis.T @ axis / len(axis), np.eye(3) / 3, atol=0.03)
    # cos of the rotation angle: for Haar measure E[trace R] = 0 and E[trace^2] = 1
    tr = np.trace(mats, axis1=1, axis2=2)
    assert abs(tr.mean()) < 0.06 and tr.var() == pytest.approx(1.0, abs=0.1)
    counts = np.bincount(draw["class"], minlength=7)
    assert counts.min() == counts.max() == 500
    assert np.abs(draw["shift"]).max() <= 0.5
    assert draw["defocus"].min() >= 2.0 and draw["defocus"].max() <= 5.0
