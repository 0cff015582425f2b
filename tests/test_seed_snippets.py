"""The lecture notes' PyTorch snippets (/work/shared/seeds/), run with only the imports changed.

Each snippet's body is copied verbatim from the notes; only ``import torch`` /
``from torch import nn`` / ``from torch.autograd import Variable`` became their dropcore
twins (``torch`` is bound to ``dropcore`` so ``torch.full`` etc. read as written). The
assertions after each snippet check what the notes show, against independent
references (closed forms, binomial bounds), never against dropcore itself.

Sources: dataflowr / Bursuc, "15.1 Dropout" (000_*.txt); Fleuret, EE-559 "6. Going
deeper" (002_*.txt: the BatchNorm transcript and ``create_model``). The training loop
with ``narrow`` / ``torch.max(output, 1)`` / ``pow`` / ``sign`` is not in the seeds: it
is the EE-559 practicals' disc problem and ``train_model`` / ``compute_nb_errors``,
reproduced as the course writes them (marked below).
"""

import math

import numpy as np

# --- the only changed lines: the imports ---
import dropcore as torch
from dropcore import nn, optim
from dropcore import Tensor
from dropcore.autograd import Variable


def test_dropout_transcript_000():
    torch.manual_seed(0)
    # --- verbatim (000: "Dropout") ---
    x = torch.full((3, 5), 1.0).requires_grad_()
    x
    dropout = nn.Dropout(p = 0.75)
    y = dropout(x)
    y
    l = y.norm(2, 1).sum()
    l.backward()
    x.grad
    # --- checks: kept units are 1/(1-p) = 4; d/dx sum_i ||y_i|| = 4 * 4 / ||y_i|| on kept units
    yv = y.detach().numpy()
    assert set(np.unique(yv)) <= {0.0, 4.0}
    kept = (yv != 0).sum(1, keepdims=True)
    want = np.where(yv != 0, 16.0 / (4.0 * np.sqrt(np.maximum(kept, 1))), 0.0)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)


def test_model_with_dropout_layers_000():
    # --- verbatim (000: "For a given network ... we can simply add dropout layers") ---
    model = nn.Sequential(nn.Linear(10, 100), nn.ReLU(),
                          nn.Dropout(),
                          nn.Linear(100, 50), nn.ReLU(),
                          nn.Dropout(),
                          nn.Linear(50, 2));
    # --- checks
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert model[2].p == 0.5
    assert model(torch.ones(4, 10)).shape == (4, 2)


def test_train_false_recurses_and_eval_is_deterministic_000():
    torch.manual_seed(1)
    # --- verbatim (000: "A model using dropout has to be set in train or test mode") ---
    dropout = nn.Dropout()
    model = nn.Sequential(nn.Linear(3, 10), dropout, nn.Linear(10, 3))
    dropout.training
    model.train(False)
    dropout.training
    # --- checks
    assert dropout.training is False
    # --- verbatim (000: same slide, second transcript) ---
    dropout = nn.Dropout()
    model = nn.Sequential(nn.Linear(3, 10), dropout, nn.Linear(10, 3))
    x = torch.full((1, 3), 1.0)
    model.train()
    a = model(x)
    b = model(x)
    model.eval()
    c = model(x)
    d = model(x)
    # --- checks: two training passes draw different masks; eval passes are equal
    assert not torch.equal(a, b)
    assert torch.equal(c, d)
    assert "grad_fn=<" in repr(c)


def test_dropout2d_transcript_000():
    torch.manual_seed(2)
    # --- verbatim (000: "Spatial Dropout") ---
    dropout2d = nn.Dropout2d()
    x = Variable(Tensor(2, 3, 2, 2).fill_(1.0))
    y = dropout2d(x)
    # --- checks: whole channels are 0 or 2
    per_channel = y.detach().numpy().reshape(6, 4)
    assert all(len(set(row)) == 1 and row[0] in (0.0, 2.0) for row in per_channel.tolist())


def test_batchnorm_transcript_002():
    torch.manual_seed(3)
    # --- verbatim (002: slides 38-39) ---
    x = Tensor (10000 , 3).normal_ ()
    x = x * Tensor ([2, 5, 10]) + Tensor ([-10, 25, 3])
    x = Variable(x)
    m = x.data.mean (0)
    s = x.data.std (0)
    bn = nn. BatchNorm1d (3)
    bn.bias.data = Tensor ([2, 4, 8])
    bn.weight.data = Tensor ([1, 2, 3])
    y = bn(x)
    ym = y.data.mean (0)
    ys = y.data.std (0)
    # --- checks: the sample moments within 6 sigma of the true ones; BN output moments
    # are the affine parameters (std with Bessel's correction: sqrt(n / (n - 1)) larger).
    n = 10000
    sigma = np.array([2.0, 5.0, 10.0])
    assert np.all(np.abs(m.numpy() - [-10, 25, 3]) < 6 * sigma / math.sqrt(n))
    assert np.all(np.abs(s.numpy() - sigma) < 6 * sigma / math.sqrt(2 * n))
    np.testing.assert_allclose(ym.numpy(), [2, 4, 8], atol=1e-4)
    np.testing.assert_allclose(ys.numpy(), np.array([1, 2, 3]) * math.sqrt(n / (n - 1)), rtol=1e-4)


def test_batchnorm_transcript_modern_form():
    # The reading of the same slide with today's API: torch.empty(...).normal_() and x.std(0).
    torch.manual_seed(4)
    x = torch.empty(10000, 3).normal_()
    x = x * torch.tensor([2, 5, 10]) + torch.tensor([-10, 25, 3])
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([2.0, 4.0, 8.0]))
        bn.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
    y = bn(x)
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    np.testing.assert_allclose(y.mean(0).detach().numpy(), [2, 4, 8], atol=1e-4)
    np.testing.assert_allclose(y.std(0).detach().numpy(), np.array([1, 2, 3]) * math.sqrt(10000 / 9999), rtol=1e-4)
    assert np.all(np.abs(x.std(0).numpy() - [2, 5, 10]) < 6 * np.array([2, 5, 10]) / math.sqrt(20000))


# --- verbatim (002: slide 44, "Deep MLP on a 2d disc toy example") ---
def create_model (with_batchnorm , nc = 32, depth = 16):
    modules = []
    modules.append(nn.Linear (2, nc))
    if with_batchnorm : modules.append(nn. BatchNorm1d (nc))
    modules.append(nn.ReLU ())
    for d in range(depth):
        modules.append(nn.Linear(nc , nc))
        if with_batchnorm : modules.append(nn. BatchNorm1d (nc))
        modules.append(nn.ReLU ())
    modules.append(nn.Linear(nc , 2))
    return nn. Sequential (* modules)


# --- EE-559 practicals (not in the seeds; as the course writes them) ---
def generate_disc_set(nb):
    input = torch.empty(nb, 2).uniform_(-1, 1)
    target = input.pow(2).sum(1).sub(2 / math.pi).sign().add(1).div(2).long()
    return input, target


mini_batch_size = 100


def train_model(model, train_input, train_target, nb_epochs):
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr = 1e-1)
    for e in range(nb_epochs):
        for b in range(0, train_input.size(0), mini_batch_size):
            output = model(train_input.narrow(0, b, mini_batch_size))
            loss = criterion(output, train_target.narrow(0, b, mini_batch_size))
            model.zero_grad()
            loss.backward()
            optimizer.step()


def train_model_by_hand(model, train_input, train_target, nb_epochs):
    criterion = nn.CrossEntropyLoss()
    eta = 1e-1
    for e in range(nb_epochs):
        sum_loss = 0
        for b in range(0, train_input.size(0), mini_batch_size):
            output = model(train_input.narrow(0, b, mini_batch_size))
            loss = criterion(output, train_target.narrow(0, b, mini_batch_size))
            sum_loss = sum_loss + loss.item()
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= eta * p.grad
    return sum_loss


def compute_nb_errors(model, input, target):
    nb_errors = 0
    for b in range(0, input.size(0), mini_batch_size):
        output = model(input.narrow(0, b, mini_batch_size))
        _, predicted_classes = torch.max(output, 1)
        for k in range(mini_batch_size):
            if target[b + k] != predicted_classes[k]:
                nb_errors = nb_errors + 1
    return nb_errors


def _disc_data():
    torch.manual_seed(5)
    train_input, train_target = generate_disc_set(1000)
    test_input, test_target = generate_disc_set(1000)
    mean, std = train_input.mean(0), train_input.std(0)
    train_input.sub_(mean).div_(std)
    test_input.sub_(mean).div_(std)
    return train_input, train_target, test_input, test_target


def test_disc_set_labels_follow_the_circle():
    torch.manual_seed(6)
    input, target = generate_disc_set(2000)
    assert target.dtype == torch.int64
    inside = (input.numpy() ** 2).sum(1) < 2 / math.pi
    np.testing.assert_array_equal(target.numpy(), np.where(inside, 0, 1))
    # the disc has area 2, half the square [-1, 1]^2: about half the labels are 1
    assert abs(target.float().mean().item() - 0.5) < 6 * math.sqrt(0.25 / 2000)


def test_training_loop_with_narrow_and_max_learns_the_disc():
    train_input, train_target, test_input, test_target = _disc_data()
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 2))
    errors_before = compute_nb_errors(model, test_input, test_target)
    train_model(model, train_input, train_target, nb_epochs=50)
    errors = compute_nb_errors(model, test_input, test_target)
    assert errors_before > 300 and errors < 60  # about chance (50%) before, under 6% after


def test_hand_written_sgd_trains_the_notes_create_model_with_batchnorm():
    train_input, train_target, test_input, test_target = _disc_data()
    torch.manual_seed(8)
    std = 1.0
    model = create_model(True, depth=4)
    # --- verbatim (002: slide 44) ---
    for p in model.parameters(): p.data.normal_ (0, std)
    # --- checks: the weights really are N(0, std^2) now, and hand-written SGD trains
    w = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    assert abs(w.std() - std) < 0.05
    last_loss = train_model_by_hand(model, train_input, train_target, nb_epochs=30)
    model.train(False)
    assert compute_nb_errors(model, test_input, test_target) < 80  # < 8% error; chance is 50%
    assert last_loss / 10 < 0.3  # mean cross-entropy of the last epoch (log 2 = 0.69 is chance)
