"""``dropcore.nn.functional``: the functional forms (``import dropcore.nn.functional as F``)."""

from ..functional import *  # noqa: F401,F403
from ..functional import __all__ as _functional_all
from .activation import FUNCTIONS as _activation_functions
from .activation import elu, gelu, selu, silu, softplus  # noqa: F401

__all__ = [*_functional_all, *_activation_functions]
