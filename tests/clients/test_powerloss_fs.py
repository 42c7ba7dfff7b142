"""The power-loss file system's model on its own, without a broker: what an fsync, an fsyncdir, a
rename or a failed fsync leaves after `power_loss()` (see powerloss_fs.py)."""
import errno
import fcntl
import os

import pytest

from powerloss_fs import mount_or_skip

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fs(tmp_path):
    pl = mount_or_skip(tmp_path)
    yield pl
    pl.unmount()


def write(path, data, sync=True, flags=os.O_WRONLY | os.O_CREAT):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def after_power_loss(fs):
    report = fs.power_loss()
    fs.mount()
    return report


def test_only_fsynced_bytes_survive(fs):
    f = os.path.join(fs.mnt, "seg.log")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    sync_dir(fs.mnt)
    os.pwrite(fd, b"a" * 5000, 0)
    os.fdatasync(fd)
    os.pwrite(fd, b"b" * 3000, 5000)
    os.pwrite(fd, b"c" * 10, 100)  # an overwrite inside the synced part, not synced either
    os.close(fd)
    assert os.path.getsize(f) == 8000
    report = after_power_loss(fs)
    assert read(f) == b"a" * 5000
    assert report == ["lost bytes: seg.log: 8000 bytes written, 5000 durable"]


def test_a_file_fsynced_in_a_directory_never_fsynced_is_lost(fs):
    f = os.path.join(fs.mnt, "new.json")
    write(f, b"{}")
    report = after_power_loss(fs)
    assert not os.path.exists(f)
    assert report == ["lost name: new.json (its directory was not fsynced after it appeared)"]


def test_a_name_made_durable_before_its_bytes_is_an_empty_file(fs):
    f = os.path.join(fs.mnt, "empty")
    write(f, b"data", sync=False)
    sync_dir(fs.mnt)
    after_power_loss(fs)
    assert read(f) == b""


def test_rename_then_directory_fsync_is_kept(fs):
    d = os.path.join(fs.mnt, "topic-0")
    os.mkdir(d)
    sync_dir(fs.mnt)
    write(os.path.join(d, "meta"), b"old")
    sync_dir(d)
    write(os.path.join(d, "meta.tmp"), b"new")
    os.rename(os.path.join(d, "meta.tmp"), os.path.join(d, "meta"))
    sync_dir(d)
    write(os.path.join(d, "other.tmp"), b"x")
    sync_dir(d)
    os.rename(os.path.join(d, "other.tmp"), os.path.join(d, "other"))  # no directory fsync after
    report = after_power_loss(fs)
    assert sorted(os.listdir(d)) == ["meta", "other.tmp"]
    assert read(os.path.join(d, "meta")) == b"new"
    assert read(os.path.join(d, "other.tmp")) == b"x"
    assert report == ["lost name: topic-0/other (its directory was not fsynced after it appeared)",
                      "back again: topic-0/other.tmp (its removal was not made durable)"]


def test_unlink_and_rmdir_need_a_directory_fsync(fs):
    write(os.path.join(fs.mnt, "a"), b"A")
    os.mkdir(os.path.join(fs.mnt, "sub"))
    sync_dir(fs.mnt)
    os.unlink(os.path.join(fs.mnt, "a"))
    os.rmdir(os.path.join(fs.mnt, "sub"))
    after_power_loss(fs)
    assert read(os.path.join(fs.mnt, "a")) == b"A"
    assert os.path.isdir(os.path.join(fs.mnt, "sub"))
    os.unlink(os.path.join(fs.mnt, "a"))
    sync_dir(fs.mnt)
    after_power_loss(fs)
    assert sorted(os.listdir(fs.mnt)) == ["sub"]


def test_a_new_directory_needs_its_parent_fsynced(fs):
    d = os.path.join(fs.mnt, "d")
    os.mkdir(d)
    write(os.path.join(d, "f"), b"1")
    sync_dir(d)
    after_power_loss(fs)
    assert os.listdir(fs.mnt) == []
    os.mkdir(d)
    write(os.path.join(d, "f"), b"1")
    sync_dir(d)
    sync_dir(fs.mnt)
    after_power_loss(fs)
    assert read(os.path.join(d, "f")) == b"1"


def test_truncate_then_write_at_an_offset(fs):
    f = os.path.join(fs.mnt, "t")
    write(f, bytes(range(100)))
    sync_dir(fs.mnt)
    fd = os.open(f, os.O_RDWR)
    os.ftruncate(fd, 10)
    os.pwrite(fd, b"z" * 10, 50)
    os.fsync(fd)
    os.ftruncate(fd, 5)  # not synced
    os.close(fd)
    after_power_loss(fs)
    assert read(f) == bytes(range(10)) + bytes(40) + b"z" * 10


def test_append_only_write_only_file(fs):
    f = os.path.join(fs.mnt, "store.log")
    write(f, b"", sync=True)
    sync_dir(fs.mnt)
    fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"one,")
    os.write(fd, b"two,")
    os.fdatasync(fd)
    os.write(fd, b"three,")
    os.close(fd)
    assert read(f) == b"one,two,three,"
    after_power_loss(fs)
    assert read(f) == b"one,two,"


def test_fsync_eio_loses_the_pages_even_after_it_is_cleared(fs):
    f = os.path.join(fs.mnt, "e")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    sync_dir(fs.mnt)
    os.write(fd, b"kept,")
    os.fsync(fd)
    assert fs.send("eio on")["eio"]
    os.write(fd, b"lost,")
    with pytest.raises(OSError) as e:
        os.fsync(fd)
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        sync_dir(fs.mnt)
    assert e.value.errno == errno.EIO
    fs.send("eio off")
    os.write(fd, b"later")
    os.fsync(fd)  # succeeds, over the hole the failed one left
    os.close(fd)
    assert fs.send("stats")["failed_fsync"] == 2
    after_power_loss(fs)
    assert read(f) == b"kept," + bytes(5) + b"later"


def test_enospc_on_write(fs):
    f = os.path.join(fs.mnt, "full")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    fs.send("enospc on")
    with pytest.raises(OSError) as e:
        os.write(fd, b"x")
    assert e.value.errno == errno.ENOSPC
    fs.send("enospc off")
    assert os.write(fd, b"x") == 1
    os.close(fd)


def test_sync_makes_everything_durable(fs):
    os.mkdir(os.path.join(fs.mnt, "d"))
    write(os.path.join(fs.mnt, "d", "f"), b"unsynced", sync=False)
    fs.send("sync")
    assert fs.send("stats")["dirty_files"] == 0
    assert after_power_loss(fs) == []
    assert read(os.path.join(fs.mnt, "d", "f")) == b"unsynced"


def test_fallocate_locks_and_sendfile_style_reads(fs):
    f = os.path.join(fs.mnt, "x")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    os.posix_fallocate(fd, 0, 4096)
    assert os.fstat(fd).st_size == 4096
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fd2 = os.open(f, os.O_RDONLY)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, b"hello", 10)
    r, w = os.pipe()
    assert os.sendfile(w, fd2, 10, 5) == 5
    assert os.read(r, 5) == b"hello"
    for x in (fd, fd2, r, w):
        os.close(x)
    assert "Traceback" not in fs.log()
