"""Every preset builds, takes (B, 1, D, H, W) and returns the documented shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cryoal.models import (
    PRESETS,
    Classifier,
    Segmenter,
    build_model,
    check_box,
    count_parameters,
)

CLASSIFY = list(PRESETS["classify"])
SEGMENT = list(PRESETS["segment"])


@pytest.mark.parametrize("preset", CLASSIFY)
def test_classifier_presets_shapes(preset: str) -> None:
    model = build_model("classify", preset, 5, seed=0).eval()
    assert isinstance(model, Classifier)
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
    assert feats.shape == (2, model.num_features)
    assert isinstance(model.head, nn.Linear)
    assert model.head.in_features == model.num_features and model.head.out_features == 5
    assert logits.shape == (2, 5)
    # the contract other parts rely on: forward = head(forward_features) in eval mode
    torch.testing.assert_close(logits, model.head(feats))


@pytest.mark.parametrize("preset", SEGMENT)
def test_segmentation_presets_shapes(preset: str) -> None:
    model = build_model("segment", preset, 3, seed=0).eval()
    assert isinstance(model, Segmenter)
    with torch.no_grad():
        out = model(torch.randn(2, 1, 16, 16, 16))
    assert out.shape == (2, 3, 16, 16, 16)


def test_presets_include_defaults_and_student_is_smaller() -> None:
    for task in ("classify", "segment"):
        assert {"tiny", "teacher", "student"} <= set(PRESETS[task])
        teacher = count_parameters(build_model(task, "teacher", 3, seed=0))
        student = count_parameters(build_model(task, "student", 3, seed=0))
        assert student < teacher / 2


@pytest.mark.parametrize("task", ["classify", "segment"])
@pytest.mark.parametrize(
    ("norm", "layer"),
    [("batch", nn.BatchNorm3d), ("instance", nn.InstanceNorm3d), ("group", nn.GroupNorm)],
)
def test_norm_layers_are_the_requested_kind_and_train(task: str, norm: str, layer: type) -> None:
    model = build_model(task, "student", 3, norm=norm, seed=0)
    norms = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm)
    ]
    assert norms and all(isinstance(m, layer) for m in norms)
    check_box(task, "student", norm, 32)
    out = model(torch.randn(2, 1, 32, 32, 32))
    out.float().pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_dropout_is_stochastic_in_train_mode_only() -> None:
    model = build_model("classify", "tiny", 3, dropout=0.5, seed=0)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.modules())
    x = torch.randn(4, 1, 16, 16, 16)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
        feats = model.forward_features(x)
        model.dropout.train()
        assert not torch.equal(model.forward_head(feats), model.forward_head(feats))


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a = build_model("classify", "student", 4, seed=3)
    b = build_model("classify", "student", 4, seed=3)
    c = build_model("classify", "student", 4, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.head.weight, c.head.weight)


def test_input_is_standardised_inside_the_model() -> None:
    model = build_model("classify", "tiny", 2, seed=0).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(5.0 * x + 3.0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "detect", "preset": "tiny"}, "task 'detect'"),
        ({"task": "classify", "preset": "huge"}, "choose one of"),
        ({"task": "classify", "preset": "tiny", "num_classes": 1}, ">= 2"),
        ({"task": "classify", "preset": "tiny", "norm": "layer"}, "norm 'layer'"),
        ({"task": "classify", "preset": "tiny", "dropout": 1.0}, "dropout"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict, message: str) -> None:
    args = {"num_classes": 3, **kwargs}
    task, preset, n = args.pop("task"), args.pop("preset"), args.pop("num_classes")
    with pytest.raises(ValueError, match=message):
        build_model(task, preset, n, **args)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_check_box_matches_what_instance_norm_can_train(task: str) -> None:
    for preset, spec in PRESETS[task].items():
        if preset == "resnet18" or 2 * spec.downsampling <= 8:
            continue  # boxes < 8 are refused for every norm
        too_small = 2 * spec.downsampling - spec.downsampling // 2
        with pytest.raises(ValueError, match="instance norm"):
            check_box(task, preset, "instance", too_small)
        check_box(task, preset, "batch", too_small)
    model = build_model(task, "tiny", 3, norm="instance", seed=0)
    box = 2 * PRESETS[task]["tiny"].downsampling
    check_box(task, "tiny", "instance", box)
    model(torch.randn(2, 1, box, box, box)).float().mean().backward()
