"""End to end: the d2l MLP (dropout 0.2 / 0.5) on the digits with a shuffling DataLoader,
SGD with momentum, StepLR and gradient clipping. A run checkpointed with dropcore.save
half-way and resumed into fresh objects ends with exactly the weights of a run that was
never interrupted. (d2l's MLP is 784-256-256-10 for 28x28 images; the digits are 8x8,
so the input layer has 64 features.)"""

import numpy as np

import dropcore
from dropcore import nn, optim
from dropcore.nn.utils import clip_grad_norm_
from dropcore.optim.lr_scheduler import StepLR
from dropcore.utils.data import DataLoader, TensorDataset

X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = dropcore.data.load_digits(seed=0)
EPOCHS, HALF = 4, 2


def build(init_seed: int):
    """Fresh model, optimizer, scheduler and loader (the init seed only sets the starting weights)."""
    dropcore.manual_seed(init_seed)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 10),
    )
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=1, gamma=0.7)
    shuffle = dropcore.Generator(2024)
    loader = DataLoader(TensorDataset(X_TRAIN, Y_TRAIN), batch_size=64, shuffle=True, generator=shuffle)
    return model, opt, sched, loader, shuffle


def train(model, opt, sched, loader, epochs):
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            clip_grad_norm_(model.parameters(), max_norm=2.0)
            opt.step()
        sched.step()


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def accuracy(model):
    model.eval()
    with dropcore.no_grad():
        return float((model(dropcore.tensor(X_TEST)).argmax(1).numpy() == Y_TEST).mean())


def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path):
    # Uninterrupted.
    model, opt, sched, loader, _ = build(init_seed=0)
    start = weights(model)
    train(model, opt, sched, loader, EPOCHS)
    want = weights(model)
    assert accuracy(model) > 0.9  # it really trained

    # Interrupted: half the epochs, then a checkpoint on disk.
    model, opt, sched, loader, shuffle = build(init_seed=0)
    train(model, opt, sched, loader, HALF)
    dropcore.save(
        {
            "epoch": HALF,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "shuffle": shuffle,  # a Generator: its (seed, offset) is saved
            "dropout_rng": dropcore.default_generator.get_state(),
        },
        tmp_path / "checkpoint.dcpt",
    )
    del model, opt, sched, loader, shuffle

    # Resume into fresh objects built with other initial weights, then finish.
    ckpt = dropcore.load(tmp_path / "checkpoint.dcpt")  # weights_only=True: no pickle
    model, opt, sched, loader, shuffle = build(init_seed=99)
    assert not np.array_equal(weights(model)["1.weight"], start["1.weight"])
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    shuffle.set_state(ckpt["shuffle"].get_state())
    dropcore.default_generator.set_state(ckpt["dropout_rng"])
    assert ckpt["epoch"] == HALF and opt.param_groups[0]["lr"] == sched.get_last_lr()[0]
    train(model, opt, sched, loader, EPOCHS - ckpt["epoch"])
    got = weights(model)

    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert got[k].dtype == want[k].dtype


def test_resume_without_the_dropout_generator_state_differs(tmp_path):
    """The check above is sensitive: forgetting one piece of state changes the result."""
    model, opt, sched, loader, _ = build(init_seed=0)
    train(model, opt, sched, loader, 2)
    want = weights(model)

    model, opt, sched, loader, shuffle = build(init_seed=0)
    train(model, opt, sched, loader, 1)
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "shuffle": shuffle.get_state()}
    dropcore.save(ckpt, tmp_path / "c")
    ckpt = dropcore.load(tmp_path / "c")
    model, opt, sched, loader, shuffle = build(init_seed=0)  # the dropout generator restarts here
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    shuffle.set_state(ckpt["shuffle"])
    train(model, opt, sched, loader, 1)
    assert not np.array_equal(weights(model)["1.weight"], want["1.weight"])
