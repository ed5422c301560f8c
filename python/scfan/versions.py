"""Versions of scfan and the libraries it runs on, as the versions.yml block every pipeline process emits."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

KEY_PACKAGES = ("scfan", "torch", "numpy", "scipy", "polars", "pandera", "anndata", "pysam", "pyBigWig", "pyfaidx",
                "scikit-learn", "pynndescent", "leidenalg", "scanpy", "umap-learn", "pychromvar", "MOODS-python",
                "pyjaspar")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def versions_yaml(process: str) -> str:
    lines = [f'"{process}":']
    lines += [f"    {k}: \"{v}\"" for k, v in package_versions().items()]
    lines.append(f"    scfan_python: \"{sys.executable}\"")
    return "\n".join(lines) + "\n"
