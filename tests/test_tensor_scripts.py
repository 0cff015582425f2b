"""Ordinary PyTorch code run with only the imports swapped: d2l's "Dropout from scratch".

The functions are d2l's (chapter "Dropout", PyTorch tab) as the book writes them; the
data is synthetic (no download) and the checks are closed forms or binomial bounds.
"""

import math

import numpy as np

import dropcore as torch  # the only changed line (was: import torch)


def dropout_layer(X, dropout):
    assert 0 <= dropout <= 1
    if dropout == 1: return torch.zeros_like(X)
    mask = (torch.rand(X.shape) > dropout).float()
    return mask * X / (1.0 - dropout)


def relu(X):
    a = torch.zeros_like(X)
    return torch.max(X, a)


def softmax(X):
    X_exp = torch.exp(X)
    partition = X_exp.sum(1, keepdim=True)
    return X_exp / partition


def cross_entropy(y_hat, y):
    return -torch.log(y_hat[range(len(y_hat)), y])


def accuracy(y_hat, y):
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def sgd(params, lr, batch_size):
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def test_d2l_dropout_layer():
    torch.manual_seed(0)
    X = torch.arange(16, dtype = torch.float32).reshape((2, 8))
    assert torch.equal(dropout_layer(X, 0.), X)
    assert dropout_layer(X, 1.).sum().item() == 0
    Y = dropout_layer(torch.ones(100_000), 0.5)
    kept = (Y == 2).sum().item()
    assert ((Y == 0) | (Y == 2)).all() and abs(kept - 50_000) < 6 * math.sqrt(25_000)


def test_d2l_mlp_from_scratch_trains_with_hand_written_sgd():
    torch.manual_seed(1)
    num_inputs, num_outputs, num_hiddens = 20, 3, 32
    W1 = torch.normal(0, 0.01, size=(num_inputs, num_hiddens), requires_grad=True)
    b1 = torch.zeros(num_hiddens, requires_grad=True)
    W2 = torch.normal(0, 0.01, size=(num_hiddens, num_outputs), requires_grad=True)
    b2 = torch.zeros(num_outputs, requires_grad=True)
    params = [W1, b1, W2, b2]

    def net(X, training=True):
        X = X.reshape((-1, num_inputs))
        H = relu(torch.matmul(X, W1) + b1)
        if training:
            H = dropout_layer(H, 0.2)
        return softmax(H @ W2 + b2)

    X = torch.randn(256, num_inputs)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()  # three classes, learnable
    before = accuracy(net(X, False), y)
    for epoch in range(300):
        l = cross_entropy(net(X), y)
        l.sum().backward()
        sgd(params, 0.5, 256)
    after = accuracy(net(X, False), y)
    assert isinstance(after, float) and after / 256 > 0.85 and after > before
    assert f"{l.mean():.2f}" == f"{float(l.mean()):.2f}"
    assert W1.grad.shape == (num_inputs, num_hiddens) and W1.grad.abs().sum().item() == 0  # zeroed by sgd
    # the gradient of the last step reached every parameter (the graph is intact)
    assert np.all(np.isfinite(W1.detach().numpy()))
