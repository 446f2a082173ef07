"""OS failures and kills while writing: one-line errors, nothing torn, nothing lost.

Real failures, not mocks: a 256 KiB tmpfs for a full disk, a read-only folder enforced by
dropping root's CAP_DAC_OVERRIDE with `setpriv`, and processes killed with SIGKILL at a
chosen rename. `benchmarks/faults.py` covers every write of `train`, `export` and `import`.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mai_sr import fileio
from mai_sr.errors import MaiSrError
from mai_sr.tflite import artifacts

from conftest import SHARED_ARTIFACTS

ROOT = Path(__file__).resolve().parents[1]


def mount_tmpfs(mount: Path, size: str) -> Path:
    """Mount a tmpfs of `size` (e.g. "256k") on `mount`, or skip (root only)."""
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): needs root")
    return mount


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only); unmounted afterwards."""
    yield mount_tmpfs(tmp_path / "disk", "256k")
    subprocess.run(["umount", "-l", str(tmp_path / "disk")], check=False)


@pytest.fixture
def one_mib_disk(tmp_path):
    """A 1 MiB tmpfs (root only); unmounted afterwards."""
    yield mount_tmpfs(tmp_path / "disk", "1m")
    subprocess.run(["umount", "-l", str(tmp_path / "disk")], check=False)


def without_dac_override(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    """Run argv as root without CAP_DAC_OVERRIDE, so file modes bind as for any user."""
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search,-fowner"
    cmd = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def test_full_disk_is_one_line_and_keeps_the_old_file(small_disk):
    target = small_disk / "big.bin"
    fileio.write_bytes(target, b"old")
    with pytest.raises(MaiSrError) as err:
        fileio.write_bytes(target, bytes(1 << 20))
    assert str(err.value) == f"{target}: cannot write (No space left on device)"
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in small_disk.iterdir()) == ["big.bin"]  # no temp left


def test_a_set_that_does_not_fit_leaves_every_old_file(small_disk):
    a, b = small_disk / "a.bin", small_disk / "b.bin"
    fileio.write_files({a: b"old a", b: b"old b"})
    with pytest.raises(MaiSrError, match="No space left on device"):
        fileio.write_files({a: bytes(100 << 10), b: bytes(200 << 10)})
    assert (a.read_bytes(), b.read_bytes()) == (b"old a", b"old b")
    assert sorted(p.name for p in small_disk.iterdir()) == ["a.bin", "b.bin"]


def test_read_only_folder_directory_and_file_parent_are_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code = ("import sys; from mai_sr import fileio; from mai_sr.errors import MaiSrError\n"
            "try:\n    fileio.write_bytes(sys.argv[1], b'x')\n"
            "except MaiSrError as e:\n    print(e)")
    proc = without_dac_override(sys.executable, "-c", code, str(locked / "f.bin"),
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == f"{locked / 'f.bin'}: cannot write (Permission denied)", \
        proc.stderr
    (tmp_path / "file").write_text("x")
    with pytest.raises(MaiSrError, match=r"file is a file, not a folder"):
        fileio.write_bytes(tmp_path / "file" / "out.json", b"{}")
    with pytest.raises(MaiSrError, match="is a folder, not a file name"):
        fileio.write_bytes(tmp_path, b"x")


KILL_AT_RENAME = textwrap.dedent("""
    import os, signal, sys
    from mai_sr import fileio
    real, count, at = os.replace, [0], int(sys.argv[1])
    def replace(src, dst):
        count[0] += 1
        if count[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)
    os.replace = replace
    folder = sys.argv[2]
    fileio.write_files({os.path.join(folder, n): b"new " + n.encode() for n in ("a", "b", "c")})
""")


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_a_killed_set_write_leaves_whole_files_and_its_temp_is_cleaned(tmp_path, kill_at):
    for name in "abc":
        (tmp_path / name).write_bytes(b"old " + name.encode())
    proc = subprocess.run([sys.executable, "-c", KILL_AT_RENAME, str(kill_at), str(tmp_path)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL
    contents = {n: (tmp_path / n).read_bytes() for n in "abc"}
    # Every file is whole: old or new, never a mix within one file.
    assert all(v in (b"old " + n.encode(), b"new " + n.encode()) for n, v in contents.items())
    assert sum(v.startswith(b"new") for v in contents.values()) == kill_at - 1
    temps = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert temps  # the killed process's temp files are still there...
    assert sorted(fileio.remove_stale_temps(tmp_path)) == sorted(temps)  # ...until cleaned
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_temps_of_a_live_writer_are_kept(tmp_path):
    live = tmp_path / f".m.tflite.{os.getpid()}.abcd1234.tflite"
    live.write_bytes(b"being written")
    assert fileio.remove_stale_temps(tmp_path) == [] and live.exists()


def test_a_sidecar_that_does_not_match_its_file_is_refused(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"new network")
    sidecar = artifacts.sidecar_path(model)
    sidecar.write_text(json.dumps({"model": "abpn", "sha256": fileio.sha256_json("x")}))
    with pytest.raises(MaiSrError, match=r"m.tflite.json: does not describe m.tflite"):
        artifacts.read_sidecar(model)
    sidecar.write_text(json.dumps({"model": "abpn", "sha256": fileio.sha256_file(model)}))
    assert artifacts.read_sidecar(model)["model"] == "abpn"
    sidecar.unlink()
    assert artifacts.read_sidecar(model) == {}  # no sidecar: taken as it is


def test_score_overflow_and_a_runtime_file_without_runner_are_one_line(tmp_path, capsys):
    from mai_sr.cli import main

    assert main(["score", "--psnr", "1e6", "--runtime-ms", "20"]) == 2
    assert capsys.readouterr().err == ("mai-sr score: error: psnr: 1e+06 dB is beyond any "
                                       "image's PSNR (the score overflows)\n")
    bench = tmp_path / "bench.json"
    bench.write_text('{"avg_ms": 12.5}')
    assert main(["score", "--psnr", "30", "--runtime-from", str(bench)]) == 2
    err = capsys.readouterr().err
    assert "entry 0 has no runner and no model (expected `mai-sr bench --json`" in err
    assert err.count("\n") == 1


@pytest.fixture
def one_image(tmp_path, shared_data):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "bird.png").symlink_to(shared_data / "Set5" / "bird.png")
    return folder


@pytest.mark.slow
def test_report_on_a_full_disk_keeps_the_previous_report_whole(small_disk, one_image, tmp_path,
                                                               capsys):
    from mai_sr.cli import main
    from mai_sr.pretrained import pretrained_path

    out = small_disk / "report"
    out.mkdir()
    (out / "index.html").write_text("previous report")
    model = tmp_path / "abpn.tflite"
    shutil.copy(pretrained_path("abpn", "fixed"), model)
    shutil.copy(pretrained_path("abpn", "dynamic"), tmp_path / "abpn_none.tflite")
    (small_disk / "ballast").write_bytes(bytes(200 << 10))  # leave ~50 KiB: less than a page
    assert main(["report", str(model), "--data", str(one_image), "--runner", "synap",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mai-sr report: error: ") and "No space left on device" in err
    assert err.count("\n") == 1
    assert (out / "index.html").read_text() == "previous report"
    assert not (out / "cards").exists() and not (out / "leaderboard.csv").exists()  # no half
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temp left behind


def test_report_refuses_a_fixed_file_and_a_dynamic_twin_from_two_exports(tmp_path, one_image,
                                                                         capsys):
    from mai_sr.cli import main
    from mai_sr.pretrained import pretrained_path

    shutil.copy(pretrained_path("abpn", "fixed"), tmp_path / "m.tflite")
    shutil.copy(pretrained_path("xcat", "dynamic"), tmp_path / "m_none.tflite")  # torn set
    assert main(["report", str(tmp_path / "m.tflite"), "--data", str(one_image), "--runner",
                 "synap", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "m.tflite and m_none.tflite are not one export (their model" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_upscale_refuses_a_decompression_bomb_in_one_line_and_can_lift_the_limit(tmp_path,
                                                                                 capsys):
    """A 20000x10000 PNG that compresses to a few hundred KB (200 MP > Pillow's 179 MP)."""
    import zlib

    from PIL import Image

    from mai_sr.cli import main

    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 10000)).save(bomb, optimize=False, compress_level=9)
    assert bomb.stat().st_size < 2_000_000 and zlib  # tiny on disk
    assert main(["upscale", str(bomb), str(tmp_path / "out.png"), "--pretrained", "abpn",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bomb.png: 20000x10000 is 200,000,000 pixels, above the 178,956,970-pixel" in err
    assert "--max-pixels 0" in err and err.count("\n") == 1
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    assert main(["upscale", str(small), str(tmp_path / "o.png"), "--pretrained", "abpn",
                 "--max-pixels", "1000", "--quiet"]) == 2
    assert "40x30 is 1,200 pixels, above the 1,000-pixel limit" in capsys.readouterr().err
    assert main(["upscale", str(small), str(tmp_path / "o.png"), "--pretrained", "abpn",
                 "--max-pixels", "0", "--quiet"]) == 0


def test_a_file_claiming_a_huge_input_is_one_line_in_eval_and_upscale(tmp_path, capsys,
                                                                      shared_data):
    """A fixed-shape model whose input claims 1x100000x100000x3: LiteRT cannot allocate it."""
    from mai_sr.cli import main
    from mai_sr.pretrained import pretrained_path

    data = bytearray(pretrained_path("abpn", "fixed").read_bytes())
    import struct

    # The fixed file's input shape vector holds [1, 360, 640, 3] as int32: make it 100000.
    old = struct.pack("<4i", 1, 360, 640, 3)
    assert data.count(old) >= 1
    data = data.replace(old, struct.pack("<4i", 1, 100000, 100000, 3))  # shape and signature
    huge = tmp_path / "huge.tflite"
    huge.write_bytes(bytes(data))
    img = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (64, 48)).save(img)
    for argv in (["eval", str(huge), "--data", str(shared_data / "Set5"), "--quiet"],
                 ["upscale", str(img), str(tmp_path / "o.png"), "--model", str(huge), "--quiet"]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"mai-sr {argv[0]}: error: ") and "huge.tflite" in err


# ---------------------------------------------------------------- train and export commands


def mai_sr_cli(*args: str, cwd=None, setpriv: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, "-m", "mai_sr", *args]
    if setpriv:
        return without_dac_override(*argv, env=env, cwd=cwd)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"mai-sr {command}: error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[-1]


TINY_TRAIN = ["--steps", "2", "--val-every", "2", "--ckpt-every", "1", "--batch", "2",
              "--patch", "16", "--quiet"]


@pytest.mark.tf
@pytest.mark.slow
def test_train_on_a_full_disk_and_into_bad_folders_is_one_line(small_disk, tmp_path, capsys):
    from mai_sr.cli import main

    # A checkpoint (weights + Adam moments) does not fit in 256 KiB.
    proc = mai_sr_cli("train", *TINY_TRAIN, "--out", str(small_disk / "run"))
    line = one_line_error(proc, "train")
    assert "No space left on device" in line and str(small_disk) in line
    assert not [p for p in small_disk.rglob(".*") if p.name != ".lock"]  # no temp left
    (tmp_path / "file").write_text("x")
    assert main(["train", *TINY_TRAIN, "--out", str(tmp_path / "file" / "run")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"mai-sr train: error: {tmp_path / 'file' / 'run'}: cannot write "
        f"({tmp_path / 'file'} is a file, not a folder)")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    line = one_line_error(mai_sr_cli("train", *TINY_TRAIN, "--out", str(locked / "run"),
                                     setpriv=True), "train")
    assert line == f"mai-sr train: error: {locked / 'run'}: cannot write (Permission denied)"


@pytest.mark.tf
@pytest.mark.slow
def test_export_on_a_full_disk_and_into_bad_folders_is_one_line(small_disk, tmp_path):
    args = ["--pretrained", "abpn", "--dynamic"]  # fp32: two ~170 KB networks > 256 KiB
    big = mai_sr_cli("export", str(small_disk / "m.tflite"), *args, "--precision", "fp32")
    line = one_line_error(big, "export")
    assert "No space left on device" in line
    assert sorted(p.name for p in small_disk.iterdir()) == []  # nothing torn, no temp
    (tmp_path / "d.tflite").mkdir()
    line = one_line_error(mai_sr_cli("export", str(tmp_path / "d.tflite"), *args, "--force"),
                          "export")
    assert "is a folder, not a file name" in line
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    line = one_line_error(mai_sr_cli("export", str(locked / "m.tflite"), *args, setpriv=True),
                          "export")
    assert "cannot write (Permission denied)" in line


# ---------------------------------------------------------------- import: full disk and kills

IMPORT_SOURCE = SHARED_ARTIFACTS / "etds_abpn" / "ABPN_M4C28_x3.pth"
IMPORT_EARLIER = SHARED_ARTIFACTS / "etds_zoo" / "pretrained" / "ESPCN" / "ESPCN_x3.pth"
PAGE = 4096  # tmpfs counts whole pages


@pytest.fixture(scope="module")
def import_sets(tmp_path_factory):
    """The sets two uninterrupted imports write: "old" (ESPCN x3), then "new" (ETDS's ABPN
    x3), each {file name: bytes}; the same names, so that one can replace the other."""
    missing = [p for p in (IMPORT_SOURCE, IMPORT_EARLIER) if not p.is_file()]
    if missing:
        pytest.skip(f"{missing[0]} not present: put ../shared/artifacts beside the checkout")
    sets = {}
    for name, source in (("old", IMPORT_EARLIER), ("new", IMPORT_SOURCE)):
        folder = tmp_path_factory.mktemp(name)
        proc = mai_sr_cli("import", str(source), "--out", str(folder / "w.weights.h5"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        sets[name] = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(sets["old"]) == sorted(sets["new"]) == ["w.weights.h5", "w.weights.h5.json"]
    return sets


def put_set(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder / "w.weights.h5"


def free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("short_of", ["weights", "record"])
def test_import_on_a_full_disk_is_one_line_and_keeps_the_old_set(import_sets, one_mib_disk,
                                                                 short_of):
    """ENOSPC while writing the weights (the first file of the set), or the record (the
    second, after the weights' temp file took the last pages): one line naming that file, the
    earlier import's set byte for byte and still accepted by its readers, no temp left.
    (tests/test_zoo_import.py fakes the record's ENOSPC in-process; this is the real disk.)"""
    from mai_sr.weights import weights_file_model

    out = put_set(one_mib_disk, import_sets["old"])
    weights_pages = -(-len(import_sets["new"]["w.weights.h5"]) // PAGE)
    room = weights_pages * PAGE if short_of == "record" else (weights_pages - 1) * PAGE
    (one_mib_disk / "ballast").write_bytes(bytes(free_bytes(one_mib_disk) - room))
    assert free_bytes(one_mib_disk) == room
    line = one_line_error(mai_sr_cli("import", str(IMPORT_SOURCE), "--out", str(out),
                                     "--force"), "import")
    at_fault = out if short_of == "weights" else Path(f"{out}.json")
    assert line == f"mai-sr import: error: {at_fault}: cannot write (No space left on device)"
    assert sorted(p.name for p in one_mib_disk.iterdir()) == ["ballast", "w.weights.h5",
                                                             "w.weights.h5.json"]
    assert {n: (one_mib_disk / n).read_bytes() for n in import_sets["old"]} == import_sets["old"]
    assert weights_file_model(out, None)[1:] == ("espcn", 3)


KILL_IMPORT_AT_RENAME = textwrap.dedent("""
    import os, signal, sys
    real, count, at, folder = os.replace, [0], int(sys.argv[1]), sys.argv[2]
    def replace(src, dst, *args, **kwargs):
        if os.path.dirname(os.path.abspath(dst)) == folder:
            count[0] += 1
            if count[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *args, **kwargs)
    os.replace = replace
    from mai_sr.cli import main
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.tf
@pytest.mark.slow
def test_a_killed_import_leaves_the_old_set_or_a_refused_one_and_the_next_cleans_up(
        import_sets, tmp_path):
    """SIGKILL at the set's first rename (the record's): the old set, whole and accepted, and
    two temp files. At the second: the new record with the old weights, which readers refuse
    as torn. The next import cleans the killed ones' temps and writes the whole new set."""
    from mai_sr.weights import weights_file_model

    out = put_set(tmp_path, import_sets["old"])
    argv = ["import", str(IMPORT_SOURCE), "--out", str(out), "--force"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def killed_at(rename: int) -> list[str]:
        proc = subprocess.run([sys.executable, "-c", KILL_IMPORT_AT_RENAME, str(rename),
                               str(tmp_path), *argv], env=env, capture_output=True, text=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))

    first_temps = killed_at(1)
    assert len(first_temps) == 2  # the weights' and the record's, both complete
    assert {n: (tmp_path / n).read_bytes() for n in import_sets["old"]} == import_sets["old"]
    assert weights_file_model(out, None)[1:] == ("espcn", 3)
    second_temps = killed_at(2)
    assert not set(first_temps) & set(second_temps)  # the first kill's temps were cleaned
    record = json.loads((tmp_path / "w.weights.h5.json").read_text())  # the new import's...
    assert record["weights_sha256"] == hashlib.sha256(import_sets["new"]["w.weights.h5"]
                                                      ).hexdigest()
    assert out.read_bytes() == import_sets["old"]["w.weights.h5"]  # ...with the old weights
    with pytest.raises(MaiSrError, match="does not match its record .*a torn write"):
        weights_file_model(out, None)
    assert mai_sr_cli(*argv).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.weights.h5", "w.weights.h5.json"]
    assert out.read_bytes() == import_sets["new"]["w.weights.h5"]
    assert weights_file_model(out, None)[1:] == ("abpn", 3)
