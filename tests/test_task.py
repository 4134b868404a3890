from distil.task import task_of

TREC = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def test_sst2_keeps_its_name_and_tags():
    for data_args in ({"data_dir": "../shared/data/sst2"}, {}, {"dataset_name": "stanfordnlp/sst2"},
                      {"dataset_name": "nyu-mll/glue", "dataset_config_name": "sst2"}):  # fmt: skip
        task = task_of(data_args, ["negative", "positive"])
        assert task.is_sst2 and task.description == "sentiment classification", data_args
        assert task.tags == ["sentiment-analysis", "sst2"] and task.task_id == "sentiment-classification"


def test_a_local_csv_is_named_by_its_folder_and_labels():
    task = task_of({"train_file": "../shared/data/trec/train.csv", "dataset_name": "stanfordnlp/sst2"}, TREC)
    assert (task.name, task.hub_id, task.tags) == ("TREC", None, ["trec"])
    assert task.description == "text classification into 6 classes (ABBR, DESC, ENTY, HUM, LOC, NUM)"
    assert "sentiment" not in task.description and not task.is_sst2
    assert task_of({"train_file": "data/support_tickets.jsonl"}, ["a", "b"]).name == "support_tickets"


def test_a_hub_dataset_is_named_by_its_id():
    task = task_of({"dataset_name": "SetFit/emotion"}, [str(i) for i in range(50)])
    assert (task.name, task.hub_id, task.tags) == ("SetFit/emotion", "SetFit/emotion", ["emotion"])
    assert task.description == "text classification into 50 classes"
