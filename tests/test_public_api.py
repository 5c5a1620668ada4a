"""The top-level API names stay what the README documents, whatever else has been imported."""

import importlib

import rnnlab


def test_train_stays_the_function_after_the_loop_module_is_imported():
    loop = importlib.import_module("rnnlab.train")  # what load_run, the tasks and the runner import
    from rnnlab.train import TrainConfig

    assert callable(rnnlab.train) and rnnlab.train.__module__ == "rnnlab"
    assert TrainConfig is loop.TrainConfig and hasattr(loop, "fit")
    from rnnlab import bundled_models, load_run, train

    assert train is rnnlab.train and callable(load_run) and isinstance(bundled_models(), list)


def test_train_twice_in_one_process(tmp_path):
    data = tmp_path / "names"
    data.mkdir()
    words = {"A": "ab abb abbb aab aaab ba bba baa bab abab aba bbab", "Z": "zy zyy zzy zzzy yz yyz yzz zyz zyzy zzyy yzy yzzy"}
    for label, text in words.items():
        (data / f"{label}.txt").write_text("\n".join(text.split()) + "\n", encoding="utf-8")
    for i in range(2):  # the first call imports rnnlab.train (the module); the second must still work. data: a Path
        folder = rnnlab.train("names", data=data, epochs=1, hidden=8, embed_dim=4, out=tmp_path / f"run{i}",
                              progress=False, log=lambda *a: None)
        assert (folder / "best.pt").is_file()
    assert rnnlab.load_run(folder).predict(["abba"])[0]["top"][0]["label"] in ("A", "Z")
