import pytest

from superalign.errors import UserError
from superalign.store.jsonl import read_jsonl, write_jsonl


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"prompt": "a"}\n\n{"prompt": "b"\n')
    with pytest.raises(UserError) as e:
        read_jsonl(p)
    assert f"{p}:3" in str(e.value)


def test_missing_key(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(UserError, match=r":2: missing key\(s\) 'prompt'"):
        read_jsonl(p, required=["prompt"])


def test_write_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(out, rows())
    assert not out.exists() and list(tmp_path.iterdir()) == []
    write_jsonl(out, [{"a": 1}, {"b": "é"}])
    assert read_jsonl(out) == [{"a": 1}, {"b": "é"}]


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    from superalign.store.jsonl import atomic_write_dir

    target = tmp_path / "ckpt"

    def crash(d):
        (d / "config.json").write_text("{}")
        raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        atomic_write_dir(target, crash)
    assert list(tmp_path.iterdir()) == []
    atomic_write_dir(target, lambda d: (d / "a").write_text("1"))
    atomic_write_dir(target, lambda d: (d / "b").write_text("2"))  # kept: replace=False
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    atomic_write_dir(target, lambda d: (d / "b").write_text("2"), replace=True)
    assert sorted(p.name for p in target.iterdir()) == ["b"]
