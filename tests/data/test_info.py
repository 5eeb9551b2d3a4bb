import json
import shutil

from astrosnn.cli import main


def _info(capsys, *args):
    rc = main(["data", "info", *args])
    return rc, capsys.readouterr().out


def test_info_on_shared_data_reports_all_verified(capsys, shared_data):
    rc, out = _info(capsys, "--data-dir", str(shared_data))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == f"data folder: {shared_data} (from --data-dir)"
    for name in ("digits", "mnist", "fashion-mnist", "nmnist", "ptb", "tinyshakespeare", "default"):
        assert any(line.split()[:2] == [name, "ok"] for line in lines), name
    assert out.count("4/4 md5 verified") == 2
    assert "3/3 md5 verified" in out and "1/1 sha256 verified" in out
    assert "1100/1100 .bin md5 match MANIFEST.tsv" in out
    assert "train 929,589, valid 73,760, test 82,430" in out and "vocabulary 10,000" in out
    assert "train 833, validation 167, test 100 files" in out
    assert lines[-1] == "7/7 datasets ready"


def test_info_json_and_env_var(capsys, shared_data, monkeypatch):
    monkeypatch.setenv("ASTROSNN_DATA", str(shared_data))
    rc, out = _info(capsys, "--json")
    report = json.loads(out)
    assert rc == 0 and report["chosen_by"] == "$ASTROSNN_DATA" and report["data_dir"] == str(shared_data)
    by_name = {d["name"]: d for d in report["datasets"]}
    assert by_name["mnist"]["details"]["test_label_counts"] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert by_name["nmnist"]["details"]["train_label_counts"] == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    assert set(by_name["ptb"]["details"].values()) == {"verified"}


def test_info_on_empty_folder_says_what_to_put_where(capsys, tmp_path):
    rc, out = _info(capsys, "--data-dir", str(tmp_path))
    assert rc == 0  # a report, not a failure
    assert "missing: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (from http://yann.lecun.com/exdb/mnist/" in out
    assert f"in {tmp_path / 'mnist'}" in out and f"in {tmp_path / 'ptb'}" in out
    assert "Train/<label>/<NNNNN>.bin" in out
    assert out.splitlines()[-1] == "2/7 datasets ready"  # digits and default are embedded
    assert list(tmp_path.iterdir()) == []  # info never downloads or writes


def test_info_reports_checksum_mismatch_and_corruption(capsys, shared_data, tmp_path):
    (tmp_path / "ptb").mkdir()
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        shutil.copyfile(shared_data / "ptb" / name, tmp_path / "ptb" / name)
    with (tmp_path / "ptb" / "ptb.test.txt").open("a") as f:
        f.write(" the \n")
    (tmp_path / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copyfile(shared_data / "mnist" / name, tmp_path / "mnist" / name)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage, not gzip")
    rc = main(["data", "info", "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert rc == 2
    assert "2/3 md5 verified (ptb.test.txt MISMATCH)" in out
    assert "3/4 md5 verified (t10k-labels-idx1-ubyte.gz MISMATCH)" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert lines["mnist"].split()[1] == "corrupt"
    assert f"{tmp_path / 'mnist' / 't10k-labels-idx1-ubyte.gz'}: md5 checksum mismatch" in lines["mnist"]
    assert lines["ptb"].split()[1] == "corrupt" and "ptb.test.txt: md5 checksum mismatch" in lines["ptb"]
    assert err.splitlines()[0].startswith(f"astrosnn: error: mnist corrupt: {tmp_path / 'mnist'}")
    assert len(err.splitlines()) == 2 and "Traceback" not in err
    # opting out: the modified PTB is usable ("modified"), the non-gzip file is still corrupt
    rc = main(["data", "info", "--data-dir", str(tmp_path), "--no-verify"])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert rc == 2 and lines["ptb"].split()[1] == "modified"
    assert lines["mnist"].split()[1] == "corrupt" and "t10k-labels-idx1-ubyte.gz: corrupt gzip" in lines["mnist"]


def test_info_nmnist_manifest_mismatch_is_corrupt(capsys, tmp_path):
    import hashlib

    folder = tmp_path / "nmnist" / "Test" / "3"
    folder.mkdir(parents=True)
    data = bytes([1, 2, 0x80, 0, 7]) * 3
    (folder / "00001.bin").write_bytes(data[:-5])  # a dropped event
    (tmp_path / "nmnist" / "MANIFEST.tsv").write_text(f"placed_path\tmd5\nTest/3/00001.bin\t{hashlib.md5(data).hexdigest()}\n")
    rc, out = _info(capsys, "--data-dir", str(tmp_path))
    line = next(line for line in out.splitlines() if line.startswith("nmnist "))
    assert rc == 2 and line.split()[1] == "corrupt" and "Test/3/00001.bin: md5 checksum mismatch" in line
    assert "0/1 .bin md5 match MANIFEST.tsv" in out


def test_info_unreadable_folder_and_folder_as_file(capsys, shared_data, tmp_path, monkeypatch):
    (tmp_path / "ptb").mkdir()
    for name in ("ptb.train.txt", "ptb.valid.txt"):
        shutil.copyfile(shared_data / "ptb" / name, tmp_path / "ptb" / name)
    (tmp_path / "ptb" / "ptb.test.txt").mkdir()  # a data file that is a folder
    blocked = tmp_path / "fashion-mnist"
    blocked.mkdir()
    real_stat = type(blocked).stat

    def stat(self, **kw):  # tests run as root: simulate a folder without search permission
        if self.parent == blocked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, **kw)

    monkeypatch.setattr(type(blocked), "stat", stat)
    rc = main(["data", "info", "--data-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert rc == 2 and "Traceback" not in err
    assert lines["ptb"].split()[1] == "error" and f"{tmp_path / 'ptb' / 'ptb.test.txt'}: is a folder" in lines["ptb"]
    assert lines["fashion-mnist"].split()[1] == "error"
    assert f"{blocked / 'train-images-idx3-ubyte.gz'}: permission denied" in lines["fashion-mnist"]
    assert "No such file" not in out + err


def test_info_unreadable_file_says_permission_denied(capsys, tmp_path, monkeypatch):
    (tmp_path / "tinyshakespeare").mkdir()
    target = tmp_path / "tinyshakespeare" / "input.txt"
    target.write_text("hello\n")
    real = type(target).read_bytes

    def read_bytes(self):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(type(target), "read_bytes", read_bytes)
    rc, out = _info(capsys, "--data-dir", str(tmp_path))
    line = next(line for line in out.splitlines() if line.startswith("tinyshakespeare "))
    assert rc == 2 and line.split()[1] == "error"
    assert line.endswith(f"{target}: permission denied (cannot read the file)")


def test_info_unreadable_data_dir_is_one_line(capsys, tmp_path, monkeypatch):
    real_stat = type(tmp_path).stat
    blocked = tmp_path / "data"

    def stat(self, **kw):
        if self == blocked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, **kw)

    monkeypatch.setattr(type(tmp_path), "stat", stat)
    rc = main(["data", "info", "--data-dir", str(blocked)])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"astrosnn: error: data folder {blocked}: permission denied (cannot look at it)\n"
