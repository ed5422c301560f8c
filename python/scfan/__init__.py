"""scFAN-nf: predict transcription-factor binding in single cells with a bulk-trained CNN."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scfan")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
