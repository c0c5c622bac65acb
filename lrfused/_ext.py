"""Loads the compiled extension, with a message that says how to build it when it is missing."""
import torch  # noqa: F401  (loads libtorch, which _C links against)

try:
    from lrfused import _C
except ImportError as error:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "lrfused's compiled extension lrfused._C is missing or does not match this torch "
        f"({torch.__version__}). Build it next to your torch with: "
        "pip install --no-build-isolation -e .   (original error: " + str(error) + ")"
    ) from error

__all__ = ["_C"]
