"""Correcting a segment project's masks, crop by crop: what the viewer opens and commits.

:func:`open_crop` gives the mask to start from for the session's current candidate: the
annotator's draft when a killed viewer left one, else the model's proposal for the round
(:mod:`cryoal.project.proposals`), else background. :func:`commit_mask` stores the edited
mask with how it came to be (``accepted`` when it equals the proposal, ``corrected`` when
it differs, ``painted`` without one) and the edit's cost (voxels that differ from where
the crop started from the proposal or from background, the z-slices with a change, and
the seconds spent), then moves the session on as a class label does. Headless: the napari
widget and tests call the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoal.io.store import MASK_IGNORE
from cryoal.project.labels import KIND_MASK


@dataclass(frozen=True)
class MaskCrop:
    """The current crop's masks: ``start`` to edit, the model's ``proposal`` and its
    KT-MSE ``uncertainty`` (None without a model), and whether ``start`` is a draft."""

    candidate_id: str
    start: np.ndarray
    proposal: np.ndarray | None
    uncertainty: np.ndarray | None
    from_draft: bool


def open_crop(session) -> MaskCrop:  # noqa: ANN001 - LabellingSession
    """The current candidate's masks (``ValueError`` on an empty queue)."""
    current = session._require_current()
    cid = current.candidate_id
    box = session.box
    proposals = session.proposals()
    proposal = proposals.mask(cid) if proposals is not None else None
    uncertainty = proposals.uncertainty(cid) if proposals is not None else None
    draft = session.store.draft(cid, session.annotator)
    if draft is not None:
        start, from_draft = draft, True
    elif proposal is not None:
        start, from_draft = proposal.copy(), False
    else:
        start, from_draft = np.zeros((box, box, box), np.uint8), False
    return MaskCrop(cid, start, proposal, uncertainty, from_draft)


def edit_cost(mask: np.ndarray, proposal: np.ndarray | None) -> tuple[int, int]:
    """``(voxels changed, z-slices touched)`` from the proposal (or from an all-background
    crop without one); voxels left unannotated (255) do not count as painted."""
    reference = proposal if proposal is not None else np.zeros_like(mask)
    changed = (mask != reference) & (mask != MASK_IGNORE)
    return int(changed.sum()), int(changed.any(axis=(1, 2)).sum())


def commit_mask(
    session,  # noqa: ANN001 - LabellingSession
    mask: np.ndarray,
    *,
    seconds: float | None = None,
    crop: MaskCrop | None = None,
) -> int:
    """Commit ``mask`` for the current candidate and move on; its label id.

    The source is ``accepted`` (equal to the model's proposal), ``corrected`` (changed
    from it) or ``painted`` (no proposal); the cost is :func:`edit_cost`. ``crop``: the
    current candidate's :class:`MaskCrop` when the caller has it (else it is read).
    """
    current = session._require_current()
    if crop is None or crop.candidate_id != current.candidate_id:
        crop = open_crop(session)
    mask = np.asarray(mask, dtype=np.uint8)
    if crop.proposal is None:
        source = "painted"
    else:
        source = "accepted" if np.array_equal(mask, crop.proposal) else "corrected"
    changed, slices = edit_cost(mask, crop.proposal)
    before = session.store.current_label(current.candidate_id)
    label_id = session.store.add_mask(
        current.candidate_id, mask, session.annotator, source=source, round=session.round,
        model_version=session.model_version, voxels_changed=changed, slices_touched=slices,
        seconds=seconds,
    )  # fmt: skip
    session._set_label(
        current.candidate_id, KIND_MASK, None if before is None else session._name_of(before)
    )
    session.cursor = session._first_unlabelled((session.cursor + 1) % len(session.queue))
    return label_id
