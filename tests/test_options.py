"""Options are declared once: each task's --help lists its options and the shared ones only, and an
out-of-range or ill-typed value of any numeric option is one line naming the flag, exit 2, before
any data is read."""

import pytest

from rnnlab.cli import main
from rnnlab.options import declared, field_kind, flag_of
from rnnlab.tasks import TASKS
from rnnlab.train import TrainConfig

OWN = {"names": "--max-words", "poems": "--forms", "sentiment": "--vectors"}


@pytest.mark.parametrize("task", list(OWN))
def test_help_lists_the_task_s_options_and_the_shared_ones_only(task, capsys):
    assert main(["train", task, "--help"]) == 0
    text = capsys.readouterr().out
    assert OWN[task] in text and "--epochs" in text and "--hidden" in text and "may change on --resume" in text
    assert all(flag not in text for other, flag in OWN.items() if other != task)


def numeric_flags(task_cls):
    """(flag, a value below its range) for every numeric option of the task."""
    for cfg in (TrainConfig, task_cls.model_config_cls, task_cls.config_cls):
        for f, opt in declared(cfg):
            if not opt.cli or field_kind(f) not in (int, float) or isinstance(f.default, tuple):
                continue
            low = opt.min if opt.min is not None else opt.above
            if low is not None:
                yield flag_of(f.name, opt), str(int(low) - 1 if field_kind(f) is int else low - 0.5)


@pytest.mark.parametrize("task", list(OWN))
def test_every_numeric_option_out_of_range_is_one_line_naming_the_flag(task, tmp_path, capsys):
    cases = list(numeric_flags(TASKS[task]))
    assert len(cases) >= 15
    for flag, value in cases:
        code = main(["train", task, flag, value, "--out", str(tmp_path / "never")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and flag in err and "Traceback" not in err, (flag, value, err)
    assert not (tmp_path / "never").exists()  # refused before anything was made


@pytest.mark.parametrize("args, message", [
    (["train", "names", "--hidden", "abc"], "invalid int value: 'abc'"),
    (["train", "names", "--dropout", "1.5"], "--dropout 1.5: must be >= 0 and < 1"),
    (["train", "names", "--cell", "lstm", "--nonlinearity", "relu"], "--nonlinearity: only --cell rnn has one"),
    (["train", "names", "--cell", "tutorial", "--bidirectional"], "--bidirectional: the tutorial network"),
    (["train", "names", "--val-fraction", "0.6", "--test-fraction", "0.5"], "their sum must be below 1"),
    (["train", "names", "--lr", "nan"], "--lr nan: must be a finite number"),
    (["train", "poems", "--pool", "max"], "--pool: not an option of the poems task"),
    (["train", "poems", "--softmax", "adaptive", "--tie-weights"], "--no-tie-weights"),
    (["train", "nosuch"], "unknown task 'nosuch'"),
    (["train", "names", "--threads", "-1"], "--threads: -1: give auto or a number of threads"),
    (["compare", "names", "--cells", "lstm,lstm"], "each cell once"),
    (["gradients", "--scales", "abc"], "give comma-separated numbers"),
    (["gradients", "--hidden", "0"], "--hidden 0: must be >= 1"),
    (["longrange", "--hidden", "0"], "--hidden 0: must be >= 1"),
    (["longrange", "--cells", "lstm,nope"], "give a comma-separated list from"),
])
def test_bad_options_are_one_line(args, message, tmp_path, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
