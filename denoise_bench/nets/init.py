"""Weight initialisations by what they are, for every network a method builds.

* ``kaiming0.1``: Kaiming-normal (fan_in, gain for ReLU) scaled by 0.1, zero bias: the Noise2Noise /
  Neighbor2Neighbor U-Net's official code.
* ``normal0.02``: N(0, 0.02) weights, zero bias: the pix2pix ``init_type normal, init_gain 0.02`` that
  the IDDP first author's released Noise2Grad code ships with.
* ``xavier_uniform``: Xavier-uniform weights (gain 1), zero bias: CVF-SID's official code.
* ``pytorch``: PyTorch's default (Kaiming-uniform with a = sqrt(5)); nothing is changed.

Only convolutions (plain and transposed) are touched: the suite's networks have no other weights.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_Conv = nn.Conv2d | nn.ConvTranspose2d  # the layers an initialisation touches


def _scaled_kaiming_(conv: _Conv) -> None:
    nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
    conv.weight.data.mul_(0.1)


def _normal_002_(conv: _Conv) -> None:
    nn.init.normal_(conv.weight, 0.0, 0.02)


def _xavier_uniform_(conv: _Conv) -> None:
    nn.init.xavier_uniform_(conv.weight)


_WEIGHT_INITS: dict[str, Callable[[_Conv], None] | None] = {
    "kaiming0.1": _scaled_kaiming_,
    "normal0.02": _normal_002_,
    "xavier_uniform": _xavier_uniform_,
    "pytorch": None,
}
NETWORK_INITS = tuple(_WEIGHT_INITS)


def initialise_(net: nn.Module, init: str) -> nn.Module:
    """Re-initialise ``net``'s convolutions in place by ``init`` (one of :data:`NETWORK_INITS`)."""
    if init not in _WEIGHT_INITS:
        raise ValueError(f"unknown initialisation {init!r}; valid: {', '.join(NETWORK_INITS)}")
    weight_init = _WEIGHT_INITS[init]
    if weight_init is None:
        return net
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weight_init(m)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net
