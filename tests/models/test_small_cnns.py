"""The small CNNs' channels-last adaptive max pool is a pure speed change: the same values, the same
gradients and the same NCHW layouts as ``nn.AdaptiveMaxPool2d``, alone and inside a network with
BatchNorm and dropout (whose arithmetic depends on the layout it is handed)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from transferlab.models.registry import create_backbone
from transferlab.models.small_cnns import AdaptiveMaxPool2d


@pytest.mark.parametrize("shape, out", [((6, 32, 28, 28), 16), ((5, 128, 8, 8), 4), ((3, 256, 3, 3), 1)])
def test_pool_gives_the_stock_values_gradients_and_layout(shape, out):
    x = torch.relu(torch.randn(*shape, generator=torch.Generator().manual_seed(0)))
    x[:, :, :2, :] = 0.5  # ties: both must send the gradient to the first maximum in row-major order
    stock, ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected, got = nn.AdaptiveMaxPool2d(out)(stock), AdaptiveMaxPool2d(out)(ours)
    assert torch.equal(expected, got) and got.is_contiguous()
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    expected.backward(grad)
    got.backward(grad)
    assert torch.equal(stock.grad, ours.grad)


def test_cifar_cnn_trains_bit_identically_with_the_stock_pool():
    """BatchNorm sits before the pool: a channels-last gradient reaching its backward would change the sums."""
    ours = create_backbone("cifar_cnn", pretrained=False, num_classes=10)
    stock = copy.deepcopy(ours)
    swapped = [m for m in stock.modules() if isinstance(m, AdaptiveMaxPool2d)]
    assert swapped  # the model really uses the pool under test
    for module in swapped:
        module.__class__ = nn.AdaptiveMaxPool2d
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    losses = []
    for model in (stock, ours):
        model.train()
        torch.manual_seed(1)  # the same dropout masks
        losses.append(model(x).square().mean())
        losses[-1].backward()
    assert torch.equal(*losses)
    for (name, a), b in zip(stock.named_parameters(), ours.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name
