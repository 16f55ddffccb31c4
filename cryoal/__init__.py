"""cryoal: active learning for cryo-electron tomography subtomograms.

Layers (see README): ``io`` (bytes <-> objects), ``data`` (tomograms -> tensors),
``sim`` (synthetic data with ground truth), ``models``, ``train``, ``al``,
``project`` and ``cli``.
"""

__version__ = "0.1.0"
