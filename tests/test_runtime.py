"""The engine's speed helpers (layerlab/contents/_runtime): interpreter-wide settings are
applied only inside worker processes or restored on every path (return, exception,
KeyboardInterrupt, nesting, other threads); read-ahead touches only ranges on disk."""
from __future__ import annotations

import gc
import os
import sys
import threading

import pyarrow as pa
import pytest

import layerlab as ll
from _contents_helpers import f, layer_tar, mem_image
from layerlab.contents._runtime import busy as B
from layerlab.contents._runtime.busy import SWITCH_INTERVAL, busy


def _settings():
    return gc.isenabled(), sys.getswitchinterval(), pa.default_memory_pool().backend_name


@pytest.fixture
def default_settings():
    """The interpreter as a user's kernel has it: collector on, 5 ms switch interval, Arrow's own pool."""
    pool = pa.default_memory_pool()
    interval = sys.getswitchinterval()
    gc.enable()
    sys.setswitchinterval(0.005)
    assert not B._holders and B._saved is None
    yield (True, 0.005, pool.backend_name)
    pa.set_memory_pool(pool)
    sys.setswitchinterval(interval)
    gc.enable()
    assert not B._holders and B._saved is None  # no block left behind by the test


def _inside_ok(before) -> None:
    assert not gc.isenabled()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    assert pa.default_memory_pool().backend_name == "system"


def test_busy_applies_then_restores(default_settings):
    before = default_settings
    with busy():
        _inside_ok(before)
    assert _settings() == before


def test_busy_restores_after_an_exception_and_when_nested(default_settings):
    before = default_settings
    with busy():
        with pytest.raises(ValueError):
            with busy():
                raise ValueError("inner")
        _inside_ok(before)  # still inside the outer block
    assert _settings() == before
    with pytest.raises(RuntimeError):
        with busy():
            with busy():
                raise RuntimeError("through both")
    assert _settings() == before


def test_busy_restores_after_keyboard_interrupt(default_settings):
    before = default_settings
    with pytest.raises(KeyboardInterrupt):
        with busy():
            with busy():
                raise KeyboardInterrupt
    assert _settings() == before


def test_busy_restores_when_interrupted_while_applying(default_settings, monkeypatch):
    """A KeyboardInterrupt that lands after the collector was paused but before the block
    registered itself still restores everything."""
    before = default_settings

    def half_applied(saved):
        gc.disable()
        sys.setswitchinterval(SWITCH_INTERVAL)
        raise KeyboardInterrupt

    monkeypatch.setattr(B, "_apply", half_applied)
    with pytest.raises(KeyboardInterrupt):
        with busy():
            pytest.fail("the block must not run")
    assert _settings() == before
    monkeypatch.undo()
    with busy():  # and the next block starts from a clean state
        _inside_ok(before)
    assert _settings() == before


def test_busy_as_a_decorator_restores_when_the_function_raises(default_settings):
    before = default_settings
    seen = []

    @busy()
    def work():
        seen.append(_settings())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        work()
    assert seen == [(False, pytest.approx(SWITCH_INTERVAL), "system")]
    assert _settings() == before


def test_busy_keeps_the_callers_own_choices(default_settings):
    gc.disable()
    sys.setswitchinterval(0.0005)  # shorter than busy's
    with busy():
        assert not gc.isenabled() and sys.getswitchinterval() == pytest.approx(0.0005)
    assert not gc.isenabled() and sys.getswitchinterval() == pytest.approx(0.0005)


def test_busy_across_threads_the_last_block_to_end_restores(default_settings):
    """Blocks overlap across threads: the settings stay while any block runs, in any thread,
    and come back when the last one ends, whichever thread that is and however it ends."""
    before = default_settings
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def worker(fail: bool) -> None:
        try:
            with busy():
                entered.set()
                release.wait(10)
                if fail:
                    raise ValueError("worker fails inside the block")
        except ValueError as e:
            errors.append(e)
        finally:
            done.set()

    for fail in (False, True):
        entered.clear(), release.clear(), done.clear()
        # the main thread's block ends first: the worker's still holds the settings
        t = threading.Thread(target=worker, args=(fail,))
        with busy():
            t.start()
            assert entered.wait(10)
        _inside_ok(before)
        release.set()
        t.join(10)
        assert done.is_set()
        assert _settings() == before
        # the worker's block ends first: the main thread's block restores
        entered.clear(), release.clear(), done.clear()
        t = threading.Thread(target=worker, args=(fail,))
        t.start()
        assert entered.wait(10)
        with pytest.raises(KeyboardInterrupt):
            with busy():
                release.set()
                t.join(10)
                _inside_ok(before)
                raise KeyboardInterrupt
        assert _settings() == before
    assert len(errors) == 2


def test_a_failing_scan_restores_the_interpreter(default_settings, tmp_path):
    """The engine's own blocks (scan_image, image_contents, image_results) restore the
    settings when the scan fails (a layer that does not hash to its diff_id)."""
    before = default_settings
    img = mem_image([layer_tar([f("etc/a", b"x" * 10)])], diff_ids=["sha256:" + "0" * 64])
    with pytest.raises(ll.DigestMismatchError):
        ll.efficiency(img, cache_dir=tmp_path, progress=False)
    assert _settings() == before
    with pytest.raises(ll.DigestMismatchError):
        img.files(cache_dir=False, progress=False)
    assert _settings() == before


def test_worker_env_sets_only_the_workers_environment():
    """BLAS threads are limited in the helper interpreters' environment, never in this one's."""
    from layerlab.contents._runtime.workerenv import worker_env

    before = dict(os.environ)
    env = worker_env()
    assert dict(os.environ) == before
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[var] == "1"
    import layerlab

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(layerlab.__file__)))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == pkg_parent


def test_read_ahead_advises_only_ranges_on_disk(tmp_path):
    """Ranges already in memory are left alone; evicted ones are advised (Linux); bad paths are skipped."""
    import os

    from layerlab.contents._runtime.readahead import read_ahead

    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("no RWF_NOWAIT on this platform: read_ahead does nothing")
    p = tmp_path / "blob"
    p.write_bytes(os.urandom(1 << 20))
    p.read_bytes()  # in the page cache now
    assert read_ahead([(str(p), 0, 1 << 20)]) == 0
    assert read_ahead([(str(tmp_path / "missing"), 0, 10), (str(p), 0, 0)]) == 0
    os.sync()
    fd = os.open(p, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    from layerlab.contents._runtime.readahead import _in_page_cache

    fd = os.open(p, os.O_RDONLY)
    try:
        evicted = not _in_page_cache(fd, 4096, 65536)
    finally:
        os.close(fd)
    if not evicted:
        pytest.skip("this filesystem keeps the pages (tmpfs?): nothing to read ahead")
    assert read_ahead([(str(p), 4096, 65536)]) == 65536
