"""``dropcore.nn.modules``: PyTorch's module layout, for code that imports from it.

The classes live one level up (``dropcore.nn``); each submodule here re-exports them,
so ``from dropcore.nn.modules.dropout import _DropoutNd`` works as it does in PyTorch.
"""

from . import activation, batchnorm, container, dropout, linear, loss, module  # noqa: F401
from ..activation import *  # noqa: F401,F403
from ..batchnorm import *  # noqa: F401,F403
from ..container import *  # noqa: F401,F403
from ..dropconnect import *  # noqa: F401,F403
from ..dropout import *  # noqa: F401,F403
from ..linear import *  # noqa: F401,F403
from ..loss import *  # noqa: F401,F403
from ..module import *  # noqa: F401,F403
