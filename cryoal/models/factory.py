"""One factory for every network cryoal trains: named presets built from MONAI networks.

Classification presets (``task="classify"``) are 3D ResNets / DenseNets from
``monai.networks.nets`` wrapped in :class:`~cryoal.models.classifier.Classifier`;
segmentation presets (``task="segment"``) are MONAI U-Nets wrapped in
:class:`~cryoal.models.classifier.Segmenter`. Every model takes ``(B, 1, D, H, W)``.

=============  ==========  ===================================================================
preset         task        network
=============  ==========  ===================================================================
tiny           classify    ResNet, 1 block/stage, widths 4-4-8-8, stride-2 first conv, max-pool
student        classify    ResNet, 1 block/stage, widths 4-8-16-32, stride-2 first conv
teacher        classify    ResNet, 1 block/stage, widths 8-16-32-64, stride-2 first conv
wide           classify    ResNet, 1 block/stage, widths 16-32-64-128, stride-2 first conv
densenet       classify    DenseNet, 16 initial features, growth 8, blocks (2, 4, 4)
resnet18       classify    ResNet-18 (2-2-2-2, widths 64-512), 3^3 stride-1 first conv, no
                           max-pool (CIFAR-style, as in the cryo-ET AL papers; for GPUs)
tiny           segment     UNet, channels 4-8-16, strides 2-2
student        segment     UNet, channels 8-16-32, strides 2-2, 1 residual unit
teacher        segment     UNet, channels 16-32-64-128, strides 2-2-2, 2 residual units
basicunet      segment     BasicUNet, features 16-16-32-64-128-16 (box divisible by 16)
=============  ==========  ===================================================================

Normalisation (``norm``): ``batch`` statistics depend on the batch a process sees, so
under ``torchrun`` each rank normalises over its share of the global batch and N ranks do
not reproduce one process; ``group`` and ``instance`` normalise each sample on its own and
agree across any number of ranks (to float rounding); ``syncbatch`` is batch norm whose
training statistics are reduced over all ranks (``torch.nn.SyncBatchNorm``, CUDA only), so N
GPUs see the statistics of the global batch. In one process ``syncbatch`` is ``batch``.

The stride-2 first convolution of the CPU presets is what makes them affordable on a
laptop (methods.md §5: a stride-1 first convolution costs about 12 times more). Measured
with ``benchmarks/bench_train.py`` on one core of a shared 2-core machine, 32^3 boxes: the
teacher trains at about 0.15 s per step of 32 (0.25 s with its student) and predicts about
1,400 samples/s; trained with the default configuration on 2,000 simulated samples of the
10 SHREC complexes at SNR 0.1 it reaches 0.95 test accuracy (student 0.87).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from monai.networks.nets import BasicUNet, DenseNet, ResNet, UNet
from torch import nn

from cryoal.models.classifier import Classifier, Segmenter, _DenseNetFeatures

Task = Literal["classify", "segment"]
Norm = Literal["batch", "instance", "group", "syncbatch"]
TASKS: tuple[str, ...] = ("classify", "segment")
NORMS: tuple[str, ...] = ("batch", "instance", "group", "syncbatch")
#: Norms whose training output of a sample does not depend on the other samples of the batch.
BATCH_INDEPENDENT_NORMS: tuple[str, ...] = ("instance", "group")


@dataclass(frozen=True)
class Preset:
    """A named network configuration.

    Attributes
    ----------
    task
        ``"classify"`` or ``"segment"``.
    name
        Preset name.
    description
        One line for ``--help`` and the docs.
    build
        ``build(num_classes, norm, dropout) -> nn.Module``.
    downsampling
        Ratio of the input edge to the edge of the deepest feature map.
    """

    task: str
    name: str
    description: str
    build: Callable[[int, str, float], nn.Module]
    downsampling: int


def _norm_arg(norm: str, channels: tuple[int, ...]) -> str | tuple:
    """MONAI norm argument.

    Instance norm gets learnable affine parameters (as batch norm has); group norm uses the
    largest group count <= 8 that divides every width.
    """
    if norm == "instance":
        return ("instance", {"affine": True})
    if norm == "syncbatch":  # built as batch norm; converted to SyncBatchNorm under DDP
        return "batch"
    if norm != "group":
        return norm
    groups = math.gcd(*channels)
    groups = max(g for g in range(1, min(8, groups) + 1) if groups % g == 0)
    return ("group", {"num_groups": groups})


class _ResNet(ResNet):
    """MONAI ResNet whose residual stages use the requested norm layer too.

    MONAI 1.6's ``ResNet.__init__`` passes ``norm`` only to the stem; ``_make_layer`` then
    builds every block with its default batch norm. This subclass forwards the norm.
    """

    def __init__(
        self,
        block: str,
        layers: list[int],
        block_inplanes: list[int],
        *,
        norm: str | tuple = "batch",
        **kwargs: Any,
    ) -> None:
        object.__setattr__(self, "_stage_norm", norm)
        super().__init__(block, layers, block_inplanes, norm=norm, **kwargs)

    def _make_layer(self, *args: Any, **kwargs: Any) -> nn.Sequential:
        kwargs["norm"] = self._stage_norm
        return super()._make_layer(*args, **kwargs)


def _resnet(
    widths: tuple[int, int, int, int],
    layers: tuple[int, int, int, int] = (1, 1, 1, 1),
    *,
    conv1_size: int = 3,
    conv1_stride: int = 2,
    max_pool: bool = False,
) -> Callable[[int, str, float], nn.Module]:
    def build(num_classes: int, norm: str, dropout: float) -> nn.Module:
        backbone = _ResNet(
            "basic",
            list(layers),
            list(widths),
            spatial_dims=3,
            n_input_channels=1,
            conv1_t_size=conv1_size,
            conv1_t_stride=conv1_stride,
            no_max_pool=not max_pool,
            feed_forward=False,
            norm=_norm_arg(norm, widths),
        )
        return Classifier(backbone, widths[-1], num_classes, dropout=dropout)

    return build


def _densenet(
    init_features: int = 16, growth_rate: int = 8, block_config: tuple[int, ...] = (2, 4, 4)
) -> Callable[[int, str, float], nn.Module]:
    def build(num_classes: int, norm: str, dropout: float) -> nn.Module:
        net = DenseNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=num_classes,
            init_features=init_features,
            growth_rate=growth_rate,
            block_config=block_config,
            norm=_norm_arg(norm, (init_features, growth_rate)),
            dropout_prob=dropout,
        )
        out = net.class_layers.get_submodule("out")
        if not isinstance(out, nn.Linear):  # MONAI's DenseNet ends in a linear layer "out"
            raise TypeError(f"MONAI DenseNet's last layer is a {type(out).__name__}, not Linear")
        return Classifier(
            _DenseNetFeatures(net),
            out.in_features,
            num_classes,
            dropout=dropout,
            backbone_stochastic=dropout > 0,
        )

    return build


def _unet(
    channels: tuple[int, ...], strides: tuple[int, ...], num_res_units: int
) -> Callable[[int, str, float], nn.Module]:
    def build(num_classes: int, norm: str, dropout: float) -> nn.Module:
        net = UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=num_classes,
            channels=channels,
            strides=strides,
            num_res_units=num_res_units,
            # with residual units the top up-convolution normalises the C output channels too
            norm=_norm_arg(norm, (*channels, num_classes) if num_res_units else channels),
            dropout=dropout,
        )
        return Segmenter(net, num_classes)

    return build


def _basicunet(features: tuple[int, ...]) -> Callable[[int, str, float], nn.Module]:
    def build(num_classes: int, norm: str, dropout: float) -> nn.Module:
        net = BasicUNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=num_classes,
            features=features,
            norm=_norm_arg(norm, features),
            dropout=dropout,
        )
        return Segmenter(net, num_classes)

    return build


_PRESET_LIST = [
    Preset("classify", "tiny", "ResNet 4-4-8-8, stride-2 first conv + max-pool (tests, CPU benchmarks)", _resnet((4, 4, 8, 8), max_pool=True), 32),
    Preset("classify", "student", "ResNet 4-8-16-32, stride-2 first conv (default student)", _resnet((4, 8, 16, 32)), 16),
    Preset("classify", "teacher", "ResNet 8-16-32-64, stride-2 first conv (default teacher)", _resnet((8, 16, 32, 64)), 16),
    Preset("classify", "wide", "ResNet 16-32-64-128, stride-2 first conv (4x the teacher's FLOPs)", _resnet((16, 32, 64, 128)), 16),
    Preset("classify", "densenet", "DenseNet, 16 features, growth 8, blocks 2-4-4", _densenet(), 16),
    Preset("classify", "resnet18", "3D ResNet-18, stride-1 3^3 first conv, no max-pool (paper protocol, GPU)", _resnet((64, 128, 256, 512), (2, 2, 2, 2), conv1_stride=1), 8),
    Preset("segment", "tiny", "UNet 4-8-16 (tests, CPU benchmarks)", _unet((4, 8, 16), (2, 2), 0), 4),
    Preset("segment", "student", "UNet 8-16-32, 1 residual unit (default student)", _unet((8, 16, 32), (2, 2), 1), 4),
    Preset("segment", "teacher", "UNet 16-32-64-128, 2 residual units (default teacher)", _unet((16, 32, 64, 128), (2, 2, 2), 2), 8),
    Preset("segment", "basicunet", "BasicUNet 16-16-32-64-128-16 (box divisible by 16)", _basicunet((16, 16, 32, 64, 128, 16)), 16),
]  # fmt: skip

#: ``PRESETS[task][name] -> Preset``.
PRESETS: dict[str, dict[str, Preset]] = {t: {} for t in TASKS}
for _p in _PRESET_LIST:
    PRESETS[_p.task][_p.name] = _p


def preset_names(task: str) -> list[str]:
    """Names of the presets available for ``task``."""
    _check_task(task)
    return list(PRESETS[task])


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not supported; use one of {list(TASKS)}")


def build_model(
    task: str,
    preset: str,
    num_classes: int,
    *,
    norm: str = "batch",
    dropout: float = 0.0,
    seed: int | None = None,
) -> nn.Module:
    """Build a network from a named preset.

    Parameters
    ----------
    task
        ``"classify"`` (returns a :class:`Classifier`, logits ``(B, C)``) or ``"segment"``
        (returns a :class:`Segmenter`, logits ``(B, C, D, H, W)``, background = class 0).
    preset
        A name from :data:`PRESETS` for that task (see the module docstring).
    num_classes
        ``C`` (>= 2).
    norm
        ``"batch"``, ``"instance"``, ``"group"`` or ``"syncbatch"`` normalisation layers
        (``syncbatch`` builds batch norm; :func:`to_sync_batchnorm` converts it for DDP).
    dropout
        Dropout probability (0 disables); enables MC-dropout uncertainty.
    seed
        Seed of the weight initialisation; ``None`` draws from torch's default generator.
        The caller's global RNG state is left untouched when a seed is given.

    Returns
    -------
    torch.nn.Module
        In training mode, on the CPU, float32. The model records ``task``, ``preset``,
        ``norm`` and ``dropout`` as attributes.

    Raises
    ------
    ValueError
        Unknown task, preset or norm, fewer than 2 classes, dropout outside [0, 1).
    """
    _check_task(task)
    if preset not in PRESETS[task]:
        raise ValueError(f"unknown {task} preset {preset!r}; choose one of {preset_names(task)}")
    if norm not in NORMS:
        raise ValueError(f"norm {norm!r} is not supported; use one of {list(NORMS)}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes {num_classes} must be >= 2 (segmentation counts background)")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout {dropout} must be in [0, 1)")
    build = PRESETS[task][preset].build
    if seed is None:
        model = build(int(num_classes), norm, float(dropout))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = build(int(num_classes), norm, float(dropout))
    _record(model, task=task, preset=preset, norm=norm, dropout_p=float(dropout))
    return model


def _record(model: nn.Module, **attrs: str | float) -> None:
    """Plain attributes on a module (torch's ``Module.__setattr__`` takes any value; its
    annotation admits only tensors and modules)."""
    for name, value in attrs.items():
        setattr(model, name, value)


def to_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Batch-norm layers replaced by ``torch.nn.SyncBatchNorm`` (same parameters and buffers)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def check_box(task: str, preset: str, norm: str, box: int) -> None:
    """Raise a clear ``ValueError`` when ``box`` is too small for the preset and norm.

    Every preset accepts any box from 8 voxels up; instance norm additionally needs at least
    2 voxels per edge in the deepest feature map (``box >= 2 * downsampling``), because it
    normalises over space.
    """
    _check_task(task)
    p = PRESETS[task].get(preset)
    if p is None:
        raise ValueError(f"unknown {task} preset {preset!r}; choose one of {preset_names(task)}")
    if box < 8:
        raise ValueError(f"box {box} is too small for cryoal's networks; use >= 8 voxels")
    if norm == "instance" and box < 2 * p.downsampling:
        raise ValueError(
            f"preset {preset!r} reduces a {box}^3 box to {max(1, box // p.downsampling)}^3 "
            f"voxels, too few for instance norm; use norm batch or group, a box >= "
            f"{2 * p.downsampling}, or another preset"
        )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
