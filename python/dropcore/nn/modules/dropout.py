"""Re-export of :mod:`dropcore.nn.dropout` under PyTorch's path ``nn.modules.dropout``.

``_DropoutNd`` is the common base of the dropout modules, so the MC-dropout idiom
``isinstance(m, _DropoutNd)`` finds them as in PyTorch.
"""

from ..dropout import *  # noqa: F401,F403
from ..dropout import __all__  # noqa: F401
from ..dropout import _DropoutNd  # noqa: F401
