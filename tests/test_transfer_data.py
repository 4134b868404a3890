"""`distil.transfer_data`: the teacher-logits check on Arrow columns (the stage-level errors are in test_student)."""

from __future__ import annotations

import pytest
from datasets import Dataset

from distil.errors import ConfigError
from distil.transfer_data import check_teacher_logits


def test_logits_check_counts_rows_across_arrow_chunks():
    from datasets import concatenate_datasets

    first = Dataset.from_dict({"teacher_logits": [[0.0, 1.0]] * 5})
    second = Dataset.from_dict({"teacher_logits": [[0.0, 1.0], [0.0, 1.0], [float("inf"), 1.0]]})
    both = concatenate_datasets([first, second])
    assert both.data.table.column("teacher_logits").num_chunks == 2
    with pytest.raises(ConfigError, match=r"^transfer_set: x: row 7: teacher_logits inf is not finite$"):
        check_teacher_logits(both, "x", 2)
    check_teacher_logits(first, "x", 2)  # a good one passes
