"""Re-export of :mod:`dropcore.nn.batchnorm` under PyTorch's path ``nn.modules.batchnorm``."""

from ..batchnorm import *  # noqa: F401,F403
from ..batchnorm import __all__  # noqa: F401
