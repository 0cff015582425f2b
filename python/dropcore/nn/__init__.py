"""``dropcore.nn``: modules with PyTorch's names, arguments and behaviour."""

from . import functional, init, modules, utils
from .activation import *  # noqa: F401,F403
from .activation import __all__ as _activation
from .batchnorm import *  # noqa: F401,F403
from .batchnorm import __all__ as _batchnorm
from .container import *  # noqa: F401,F403
from .container import __all__ as _container
from .dropconnect import *  # noqa: F401,F403
from .dropconnect import __all__ as _dropconnect
from .dropout import *  # noqa: F401,F403
from .dropout import __all__ as _dropout
from .linear import *  # noqa: F401,F403
from .linear import __all__ as _linear
from .loss import *  # noqa: F401,F403
from .loss import __all__ as _loss
from .module import *  # noqa: F401,F403
from .module import __all__ as _module

__all__ = [
    "functional", "init", "modules", "utils",
    *_module, *_container, *_linear, *_activation, *_batchnorm, *_loss, *_dropout, *_dropconnect,
]
