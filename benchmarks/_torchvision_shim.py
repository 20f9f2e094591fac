"""Import ``torchvision.models`` beside a torch that torchvision's compiled ops were not built for.

Only torchvision's *model definitions* (pure Python) are needed by the coverage benchmark; its
compiled extension ``torchvision/_C.so`` (nms, roi_align, deform_conv2d, ...) is built against
one exact torch build and does not load beside this project's torch 2.13.0 CPU wheel.

What happens without this shim (torchvision 0.28.0, torch 2.13.0+cpu):

1. ``torchvision/__init__.py`` imports ``torchvision.extension``, whose ``_load_library("_C")``
   catches the ``OSError`` of ``torch.ops.load_library`` and sets ``_has_ops()`` to False.
   torchvision handles that itself: every C++ op registration guarded by ``_has_ops()`` is
   skipped (the ``register_meta`` kernels, ``_autograd_registrations``), and the ops raise a
   clear error only when called.
2. ``torchvision/_meta_registrations.py`` then runs two *unguarded* decorators,
   ``@torch.library.register_fake("torchvision::nms")`` and ``("torchvision::qnms")``.
   ``register_fake`` needs the operator's schema to exist, and with ``_C.so`` not loaded
   nobody defined it: ``RuntimeError: operator torchvision::nms does not exist``, and
   ``import torchvision`` (so ``import torchvision.models``) fails.

The fix, and all of it: before ``import torchvision``, define those two operator *schemas*
(exactly the ones torchvision's C++ registers: ``nms(Tensor dets, Tensor scores,
float iou_threshold) -> Tensor``, the same for ``qnms``) in a ``torch.library.Library(
"torchvision", "FRAGMENT")``, with no kernel. ``register_fake`` then finds them and succeeds;
nothing else changes. Calling ``torchvision.ops.nms`` still fails (torchvision's own
``_assert_has_ops``: "Couldn't load custom C++ ops"), and so do the other compiled ops and
image/video io; the classification models use none of them. No file of the installed
torchvision is edited, no module is replaced in ``sys.modules``, and nothing is patched: if
torchvision's own ``_C`` ever does load (a matching torch), the schemas already exist and the
shim defines nothing.

Use: ``from _torchvision_shim import import_models; models = import_models()`` (with
``benchmarks/`` on ``sys.path``, as it is for a script in that folder), or import this module
before anything imports torchvision. ``.venv-zoo`` (``benchmarks/zoo_env.sh``) is an
environment where this works.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

#: The operator schemas that torchvision._meta_registrations registers fakes for unguarded.
SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_LIBRARY: torch.library.Library | None = None  # kept alive: dropping it removes the schemas


def _has_schema(name: str) -> bool:
    """Whether ``torchvision::name`` is a registered operator (by torchvision's _C or by us)."""
    return hasattr(torch.ops.torchvision, name)


def install() -> None:
    """Define the missing ``torchvision::`` schemas (idempotent; before ``import torchvision``)."""
    global _LIBRARY
    missing = {k: v for k, v in SCHEMAS.items() if not _has_schema(k)}
    if not missing:
        return
    if _LIBRARY is None:
        _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in missing.items():
        _LIBRARY.define(name + schema)


def import_models() -> ModuleType:
    """``torchvision.models``, importable through :func:`install`."""
    if "torchvision" not in sys.modules:
        install()
    import torchvision.models

    return torchvision.models


install()
