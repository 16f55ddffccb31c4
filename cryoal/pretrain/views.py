"""Two views of a batch of subtomograms that keep the missing wedge where it is.

A view is the sample after (1) a wedge-safe flip: independent flips of z, y and x and a
180° rotation about y, the transformations that map a ±t wedge about y onto itself (see
:mod:`cryoal.data.transforms`; 90° rotations are absent because they move the wedge),
(2) a random integer shift of up to ``max_shift`` voxels per axis (a circular roll: the
wrapped border is background noise), and (3) extra Gaussian noise with a standard deviation
drawn uniformly in ``[0, noise_std]`` times the sample's own. Two views of one sample share
the particle, its orientation and its defocus but not the flip, the position or the added
noise, so an encoder that maps them together has to look past those. Optionally (4) a
cutout: a cube of ``cutout`` times the box edge, at a random position, set to zero (the
normalised background), the strong view of semi-supervised training
(:mod:`cryoal.train.semi`).

With half pairs (odd/even half tomograms, or two simulated noise draws;
:func:`view_sources`) the two views start from the sample's two halves instead of the
sample itself, so they differ in their noise too: the particle is all they share.

Randomness comes from a ``torch.Generator`` the caller seeds per step, so a view is a pure
function of (sample, seed) and a resumed run replays the same views.
"""

from __future__ import annotations

import torch


def make_view(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    flip: bool = True,
    max_shift: int = 2,
    noise_std: float = 0.5,
    cutout: float = 0.0,
) -> torch.Tensor:
    """One random view of each sample of a batch.

    Parameters
    ----------
    x
        ``(B, 1, D, H, W)`` float32 subtomograms (on any device).
    generator
        CPU generator the draws come from.
    flip
        Apply wedge-safe flips / 180° rotations about y.
    max_shift
        Largest shift per axis in voxels (0: none).
    noise_std
        Largest added noise standard deviation, relative to each sample's (0: none).
    cutout
        Edge of the zeroed cube as a fraction of each axis's length (0: none).

    Returns
    -------
    torch.Tensor
        ``(B, 1, D, H, W)``, a new tensor.
    """
    b = x.shape[0]
    flips = (
        torch.rand((b, 3), generator=generator) < 0.5
        if flip
        else torch.zeros((b, 3), dtype=torch.bool)
    )
    shifts = (
        torch.randint(-max_shift, max_shift + 1, (b, 3), generator=generator)
        if max_shift > 0
        else torch.zeros((b, 3), dtype=torch.long)
    )
    out = torch.empty_like(x)
    for i in range(b):
        v = x[i]
        axes = [a + 1 for a in range(3) if bool(flips[i, a])]
        if axes:
            v = torch.flip(v, axes)
        s = [int(t) for t in shifts[i]]
        if any(s):
            v = torch.roll(v, shifts=s, dims=(1, 2, 3))
        out[i] = v
    if noise_std > 0:
        sigma = torch.rand((b, 1, 1, 1, 1), generator=generator) * noise_std
        std = x.flatten(1).std(dim=1).view(b, 1, 1, 1, 1).cpu()
        noise = torch.randn(x.shape, generator=generator) * (sigma * std)
        out = out + noise.to(out.device)
    if cutout > 0:
        sizes = [max(1, round(cutout * n)) for n in x.shape[2:]]
        starts = [torch.randint(0, n - s + 1, (b,), generator=generator)
                  for n, s in zip(x.shape[2:], sizes, strict=True)]  # fmt: skip
        for i in range(b):
            z, y, xx = (int(st[i]) for st in starts)
            out[i, :, z : z + sizes[0], y : y + sizes[1], xx : xx + sizes[2]] = 0.0
    return out


def view_sources(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """What the two views of each sample start from.

    Parameters
    ----------
    x
        ``(B, 1, D, H, W)`` samples, or ``(B, 2, D, H, W)`` half pairs.
    generator
        CPU generator (used only for half pairs: which half goes first, per sample).

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        Two ``(B, 1, D, H, W)`` tensors: the samples twice, or one half of each pair and
        the other, in a random order per sample.
    """
    if x.shape[1] == 1:
        return x, x
    if x.shape[1] != 2:
        raise ValueError(f"samples of shape {tuple(x.shape)}: expected 1 channel or 2 halves")
    swap = (torch.rand(x.shape[0], generator=generator) < 0.5).view(-1, 1, 1, 1, 1)
    swap = swap.to(x.device)
    return torch.where(swap, x[:, 1:], x[:, :1]), torch.where(swap, x[:, :1], x[:, 1:])
