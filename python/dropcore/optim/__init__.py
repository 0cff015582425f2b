"""``dropcore.optim``: optimizers and learning-rate schedulers with PyTorch's names, defaults,
update rules and checkpoint layout.

Each step is a handful of whole-array NumPy operations per parameter, done in place in the
parameter's dtype. ``foreach=`` is accepted everywhere and ignored.
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
