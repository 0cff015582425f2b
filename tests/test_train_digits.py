"""A small dropout MLP trained on scikit-learn's digits reaches >= 95% test accuracy."""

import numpy as np
from sklearn.datasets import load_digits

import dropcore
import dropcore.nn as nn


def test_mlp_with_dropout_learns_digits():
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.75 * len(x))
    xtr, ytr, xte, yte = x[:split], y[:split], x[split:], y[split:]

    dropcore.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    opt = dropcore.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    for epoch in range(30):
        model.train()
        perm = rng.permutation(len(xtr))
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = loss_fn(model(dropcore.tensor(xtr[idx])), ytr[idx])
            loss.backward()
            opt.step()
    model.eval()
    with dropcore.no_grad():
        pred = model(dropcore.tensor(xte)).detach().numpy().argmax(1)
    accuracy = (pred == yte).mean()
    assert accuracy >= 0.95, accuracy
