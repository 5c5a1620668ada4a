"""The top-level API that the README and the notebook use: rnnlab.load_run, rnnlab.train_task,
rnnlab.bundled_models -- whatever else has been imported, and with pathlib paths as options."""

import importlib

import rnnlab


def test_the_api_names_survive_importing_the_loop_module():
    loop = importlib.import_module("rnnlab.train")  # what load_run, the tasks and the runner import
    from rnnlab import bundled_models, load_run, train_task

    assert hasattr(loop, "fit") and train_task is rnnlab.train_task and callable(load_run)
    assert isinstance(bundled_models(), list)


def test_train_task_twice_in_one_process_with_path_options(tmp_path):
    data = tmp_path / "names"
    data.mkdir()
    words = {"A": "ab abb abbb aab aaab ba bba baa bab abab aba bbab", "Z": "zy zyy zzy zzzy yz yyz yzz zyz zyzy zzyy yzy yzzy"}
    for label, text in words.items():
        (data / f"{label}.txt").write_text("\n".join(text.split()) + "\n", encoding="utf-8")
    for i in range(2):  # the first call imports the loop module rnnlab.train; the second must still work
        folder = rnnlab.train_task("names", data=data, epochs=1, hidden=8, embed_dim=4, out=tmp_path / f"run{i}",
                                   progress=False, baseline=False, log=lambda *a: None)
        assert (folder / "best.pt").is_file()
    assert rnnlab.load_run(folder).predict(["abba"])[0]["top"][0]["label"] in ("A", "Z")
