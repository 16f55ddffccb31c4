"""Per-sample gradient norms: closed form and exact per-layer norms against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cryoal.al import gradnorm as G


class TinyClassifier(nn.Module):
    """A small 3D CNN with the cryoal Classifier interface and every supported layer kind."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(1, 6, 3, stride=2, padding=1),
            nn.BatchNorm3d(6),
            nn.ReLU(inplace=True),
            nn.Conv3d(6, 8, 3, padding="same", dilation=2, groups=2, padding_mode="reflect"),
            nn.GroupNorm(2, 8),
            nn.PReLU(8),
            nn.ConvTranspose3d(8, 4, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm3d(4, affine=True),
            nn.Conv3d(4, 4, 2, padding="same"),  # even kernel: asymmetric padding
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(4, 6),
            nn.LayerNorm(6),
            nn.PReLU(),
        )
        self.head = nn.Linear(6, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@pytest.fixture
def model() -> TinyClassifier:
    torch.manual_seed(0)
    m = TinyClassifier().double()
    bn = m.body[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _batch(n: int = 5) -> torch.Tensor:
    return torch.randn(
        n, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )


def _loop_sq_norms(model: nn.Module, x: torch.Tensor, cls: int | None) -> list[dict[str, float]]:
    """Reference: one backward pass per sample (what the released code does)."""
    params = dict(model.named_parameters())
    out = []
    for i in range(x.shape[0]):
        logp = torch.log_softmax(model(x[i : i + 1]), 1)
        loss = -(logp.exp() * logp).sum() if cls is None else -logp[0, cls]
        grads = torch.autograd.grad(loss, list(params.values()))
        out.append({n: float((g**2).sum()) for n, g in zip(params, grads, strict=True)})
    return out


@pytest.mark.parametrize("method", [None, "ghost", "materialise"])
def test_exact_per_sample_norms_equal_a_loop_of_backward_passes(model, method):
    x = _batch()
    ref = _loop_sq_norms(model, x, None)
    sq, _ = G.per_sample_grad_sq_norms(model, x, "entropy", method=method)
    assert set(sq[0]) == set(ref[0])  # every trainable tensor is covered
    for name in ref[0]:
        np.testing.assert_allclose(
            sq[0][name].numpy(), [r[name] for r in ref], rtol=1e-9, atol=1e-20
        )


def test_expected_surrogate_uses_one_backward_per_class_and_matches_loop(model):
    x = _batch(3)
    sq, probs = G.per_sample_grad_sq_norms(model, x, "expected")
    assert len(sq) == 4
    for c in range(4):
        ref = _loop_sq_norms(model, x, c)
        for name in ref[0]:
            np.testing.assert_allclose(
                sq[c][name].numpy(), [r[name] for r in ref], rtol=1e-9, atol=1e-20
            )
    scores = G.gradnorm_scores(model, x, surrogate="expected", norm="global")
    manual = sum(
        probs[:, c].numpy()
        * np.sqrt(sum(np.array([r[n] for r in _loop_sq_norms(model, x, c)]) for n in sq[c]))
        for c in range(4)
    )
    np.testing.assert_allclose(scores, manual, rtol=1e-9)


@pytest.mark.parametrize("surrogate", ["entropy", "expected"])
@pytest.mark.parametrize("norm", ["sum_of_tensor_norms", "global"])
def test_closed_form_last_layer_equals_autograd(model, surrogate, norm):
    x = _batch()
    closed = G.gradnorm_scores(model, x, surrogate=surrogate, norm=norm, scope="last_layer")
    # autograd over the head only: freeze everything else
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head."))
    exact = G.gradnorm_scores(model, x, surrogate=surrogate, norm=norm, scope="all")
    np.testing.assert_allclose(closed, exact, rtol=1e-9)


def test_sum_of_tensor_norms_differs_from_global(model):
    x = _batch()
    a = G.gradnorm_scores(model, x, norm="sum_of_tensor_norms")
    b = G.gradnorm_scores(model, x, norm="global")
    assert (a > b).all()  # triangle inequality, strict with many tensors


def test_released_expected_equals_entropy_but_norm_inside_expectation_differs():
    torch.manual_seed(2)
    head = nn.Linear(3, 3).double()
    h = torch.randn(2, 3, dtype=torch.float64)
    logits = head(h)
    # the released code: sum_c p_c CE(f(x), c) with p attached has the entropy's gradient
    logp = torch.log_softmax(logits, 1)
    released = -(logp.exp() * logp).sum()
    expected_attached = sum((logp.exp()[:, c] * -logp[:, c]).sum() for c in range(3))
    g1 = torch.autograd.grad(released, head.weight, retain_graph=True)[0]
    g2 = torch.autograd.grad(expected_attached, head.weight)[0]
    torch.testing.assert_close(g1, g2)
    # uniform prediction: the entropy is stationary (zero gradient) while the expected
    # gradient norm is large; a confident sample ranks the other way round
    probs = np.array([[1 / 3, 1 / 3, 1 / 3], [0.8, 0.15, 0.05]])
    feats = np.ones((2, 4))
    ent = G.last_layer_gradnorm(probs, feats, surrogate="entropy")
    exp = G.last_layer_gradnorm(probs, feats, surrogate="expected")
    assert ent[0] == pytest.approx(0.0, abs=1e-12) and ent[1] > 0
    assert exp[0] > exp[1]
    np.testing.assert_allclose(exp[0], np.sqrt(1 - 1 / 3) * (2 + 1))  # ||p - e_c|| (||h|| + 1)


def test_errors_for_training_mode_reuse_and_unsupported_layers(model):
    x = _batch(2)
    model.train()
    with pytest.raises(ValueError, match="eval"):
        G.gradnorm_scores(model, x)
    model.eval()
    model.body[1].train()  # BatchNorm alone in training mode
    with pytest.raises(ValueError, match="batch statistics"):
        G.per_sample_grad_sq_norms(_EvalWrapper(model), x)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(self.lin(x.reshape(x.shape[0], -1)[:, :4]))

    with pytest.raises(ValueError, match="more than once"):
        G.gradnorm_scores(Twice().double().eval(), x)

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.emb.weight.sum() * x.reshape(x.shape[0], -1)[:, :2]

    with pytest.raises(ValueError, match="Embedding"):
        G.gradnorm_scores(Odd().double().eval(), x)


class _EvalWrapper(nn.Module):
    """Reports eval mode at the top while an inner BatchNorm is left in training mode."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.training = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)
