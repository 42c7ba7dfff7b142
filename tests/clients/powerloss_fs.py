"""A FUSE pass-through file system that knows what a power loss would keep.

    python powerloss_fs.py BACKING DURABLE MOUNTPOINT --control CTL_DIR

Everything done in MOUNTPOINT goes straight through to the real directory BACKING. Beside it the
file system keeps DURABLE, the image the disk would have after a power loss, on the model of a
journaling file system without data=journal, taken strictly:

* File contents. Bytes written to a file become durable only when that file is fsynced or
  fdatasynced: every inode has the byte ranges written since its last fsync (and the smallest
  size a truncate gave it since then), and an fsync copies just those ranges and the file's size
  into DURABLE/objects/<inode id>. Both fsync and fdatasync count as one.
* Names. A create, mkdir, rename, unlink or rmdir in a directory becomes durable only when that
  directory is fsynced (fsyncdir): the directory's whole listing (name -> inode id) is then
  recorded in DURABLE/names.json. A file created and fsynced in a directory that was never
  fsynced has durable contents but no durable name: after a power loss it is gone. A rename is
  durable in each directory once that directory is fsynced (so a file renamed across directories
  may show up under both names, or neither). The `sync` control command (sync(1)) makes
  everything durable; syncfs(2) does not reach a FUSE file system and so, here, syncs nothing.
* A failed fsync (fault injection below) loses the dirty ranges it was to write, as Linux does
  when writeback fails: a later, successful fsync does not bring them back.

At start the whole of BACKING is durable (it is copied into a fresh DURABLE). `apply_durable_image`
(after the file system is unmounted and the writer SIGKILLed) turns BACKING into DURABLE: the next
mount shows only what was durable. `PowerLossMount` drives all this for tests.

Fault injection through the unix socket CTL_DIR/control.sock, one command a line (`send`):
`eio on|off` (every fsync, fdatasync and fsyncdir fails with EIO), `enospc on|off` (every write
fails with ENOSPC), `sync`, `stats`. Also: `python powerloss_fs.py --send CTL_DIR 'eio on'`.

Locks (flock and fcntl) are left to the kernel, which then handles them locally; fallocate supports mode 0
only (EOPNOTSUPP otherwise); symlinks and hard links are not supported.
"""
import argparse
import bisect
import errno
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

CHUNK = 1 << 20


class FileState:
    """What an inode wrote since its last fsync."""

    def __init__(self):
        self.dirty = []  # sorted, disjoint [start, end) byte ranges
        self.min_size = None  # the smallest size a truncate gave the file, if any

    def write(self, start, end):
        r = self.dirty
        i = bisect.bisect_left(r, [start, start])
        if i > 0 and r[i - 1][1] >= start:
            i -= 1
        j = i
        while j < len(r) and r[j][0] <= end:
            start, end = min(start, r[j][0]), max(end, r[j][1])
            j += 1
        r[i:j] = [[start, end]]

    def truncate(self, size):
        self.min_size = size if self.min_size is None else min(self.min_size, size)


def _error(code):
    return OSError(code, os.strerror(code))  # mfusepy answers the kernel with -errno


class PowerLossFS:
    """The FUSE operations (mfusepy calls the methods it finds) and the model behind them."""

    use_ns = True

    def __init__(self, backing, durable):
        # mfusepy takes any attribute named like a FUSE operation for one: none of these is.
        self.b = os.path.realpath(backing)
        self.d = os.path.realpath(durable)
        self.mutex = threading.RLock()
        self.next_id = 0
        self.ids = {}  # st_ino in BACKING -> inode id, for every inode that has a name there
        self.files = {}  # inode id -> FileState, for files written or truncated since their fsync
        self.fds = {}  # open file handle (an fd on BACKING) -> inode id
        self.names = {}  # directory id -> {name: [inode id, "d" or "f"]}: the durable names
        self.eio = self.enospc = False
        self.counts = {"fsync": 0, "fsyncdir": 0, "failed_fsync": 0, "write": 0}
        self._snapshot()

    # The model.

    def _path(self, path):
        return self.b + path

    def _new_id(self, st):
        self.ids[st.st_ino] = self.next_id
        self.next_id += 1
        return self.ids[st.st_ino]

    def _id(self, st):
        return self.ids[st.st_ino] if st.st_ino in self.ids else self._new_id(st)

    def _object(self, inode):
        return os.path.join(self.d, "objects", str(inode))

    def _snapshot(self):
        """All of BACKING is durable at start: DURABLE becomes a copy of it."""
        shutil.rmtree(self.d, ignore_errors=True)
        os.makedirs(os.path.join(self.d, "objects"))
        self.root = self._id(os.lstat(self.b))
        for dirpath, dirnames, filenames in os.walk(self.b):
            entries = {}
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    entries[name] = [self._id(st), "d"]
                elif stat.S_ISREG(st.st_mode):
                    entries[name] = [self._id(st), "f"]
                    shutil.copyfile(path, self._object(self.ids[st.st_ino]))
            self.names[self._id(os.lstat(dirpath))] = entries
        self._save_names()

    def _save_names(self):
        tmp = os.path.join(self.d, "names.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"root": self.root, "dirs": self.names}, f)
        os.replace(tmp, os.path.join(self.d, "names.json"))

    def _file(self, inode):
        return self.files.setdefault(inode, FileState())

    def _persist_file(self, inode, fd):
        """fsync: the ranges written since the last one, and the size, reach DURABLE."""
        fs = self.files.pop(inode, None)
        if fs is None:
            return
        size = os.fstat(fd).st_size
        out = os.open(self._object(inode), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            if fs.min_size is not None:
                os.ftruncate(out, fs.min_size)  # what was cut off is gone, even if it grew back
            os.ftruncate(out, size)
            for start, end in fs.dirty:
                pos, end = start, min(end, size)
                while pos < end:
                    data = os.pread(fd, min(CHUNK, end - pos), pos)
                    if not data:
                        break
                    os.pwrite(out, data, pos)
                    pos += len(data)
        finally:
            os.close(out)

    def _persist_dir(self, path):
        """fsyncdir: the directory's current listing becomes its durable one."""
        entries = {}
        with os.scandir(self._path(path)) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                    entries[e.name] = [self._id(st), "d" if stat.S_ISDIR(st.st_mode) else "f"]
        self.names[self._id(os.lstat(self._path(path)))] = entries
        self._save_names()

    def sync_all(self):
        """sync(1): every file's dirty ranges and every directory's listing become durable."""
        with self.mutex:
            for dirpath, _, filenames in os.walk(self.b):
                self._persist_dir(dirpath[len(self.b):] or "/")
                for name in filenames:
                    path = os.path.join(dirpath, name)
                    inode = self.ids.get(os.lstat(path).st_ino)
                    if inode in self.files:
                        fd = os.open(path, os.O_RDONLY)
                        try:
                            self._persist_file(inode, fd)
                        finally:
                            os.close(fd)

    def _forget(self, st):
        """BACKING may hand `st`'s inode number to a new file: forget which inode it was."""
        if stat.S_ISDIR(st.st_mode) or st.st_nlink <= 1:
            self.ids.pop(st.st_ino, None)

    # FUSE operations: pass-through to BACKING, with the bookkeeping above.

    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None and fh in self.fds else os.lstat(self._path(path))
        attrs = {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid",
                                              "st_blocks", "st_blksize")}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise _error(errno.EACCES)
        return 0

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def statfs(self, path):
        sv = os.statvfs(self.b)
        return {k: getattr(sv, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                            "f_files", "f_ffree", "f_favail", "f_namemax")}

    def _open(self, path, flags, mode=None):
        # Offsets come from the kernel (O_APPEND included); a write-only fd could not be read at
        # fsync time.
        flags &= ~os.O_APPEND
        if flags & os.O_ACCMODE == os.O_WRONLY:
            flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        with self.mutex:
            try:
                existed = os.lstat(self._path(path))
            except FileNotFoundError:
                existed = None
            fd = os.open(self._path(path), flags, 0o644 if mode is None else mode)
            st = os.fstat(fd)
            inode = self._id(st) if existed and existed.st_ino == st.st_ino else self._new_id(st)
            if existed is None:
                self._file(inode).truncate(0)  # a new file: nothing of it is durable
            elif flags & os.O_TRUNC:
                self._file(inode).truncate(0)
            self.fds[fd] = inode
            return fd

    def open(self, path, flags):
        return self._open(path, flags)

    def create(self, path, mode, flags=os.O_WRONLY):
        return self._open(path, flags | os.O_CREAT, mode)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        if self.enospc:
            raise _error(errno.ENOSPC)
        with self.mutex:
            n = os.pwrite(fh, data, offset)
            self._file(self.fds[fh]).write(offset, offset + n)
            self.counts["write"] += 1
            return n

    def truncate(self, path, length, fh=None):
        with self.mutex:
            if fh is not None and fh in self.fds:
                os.ftruncate(fh, length)
                inode = self.fds[fh]
            else:
                os.truncate(self._path(path), length)
                inode = self._id(os.lstat(self._path(path)))
            self._file(inode).truncate(length)
            return 0

    def fallocate(self, path, mode, offset, length, fh):
        if mode != 0:
            raise _error(errno.EOPNOTSUPP)
        os.posix_fallocate(fh, offset, length)  # the size is tracked at fsync; no bytes change
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        with self.mutex:
            self.fds.pop(fh, None)
            os.close(fh)
        return 0

    def fsync(self, path, datasync, fh):
        with self.mutex:
            self.counts["fsync"] += 1
            if self.eio:
                self.counts["failed_fsync"] += 1
                self.files.pop(self.fds[fh], None)  # the failed writeback's pages are lost
                raise _error(errno.EIO)
            self._persist_file(self.fds[fh], fh)
            return 0

    def fsyncdir(self, path, datasync, fh):
        with self.mutex:
            self.counts["fsyncdir"] += 1
            if self.eio:
                self.counts["failed_fsync"] += 1
                raise _error(errno.EIO)
            if path is not None:
                self._persist_dir(path)
            return 0

    def mkdir(self, path, mode):
        with self.mutex:
            os.mkdir(self._path(path), mode)
            self._new_id(os.lstat(self._path(path)))
            return 0

    def rmdir(self, path):
        with self.mutex:
            st = os.lstat(self._path(path))
            os.rmdir(self._path(path))
            self._forget(st)
            return 0

    def unlink(self, path):
        with self.mutex:
            st = os.lstat(self._path(path))
            os.unlink(self._path(path))
            self._forget(st)
            return 0

    def rename(self, old, new, flags=0):
        if flags & ~1:  # RENAME_NOREPLACE alone is supported
            raise _error(errno.EINVAL)
        with self.mutex:
            try:
                replaced = os.lstat(self._path(new))
            except FileNotFoundError:
                replaced = None
            if replaced is not None and flags & 1:
                raise _error(errno.EEXIST)
            moved = os.lstat(self._path(old))
            os.rename(self._path(old), self._path(new))
            if replaced is not None and replaced.st_ino != moved.st_ino:
                self._forget(replaced)
            return 0

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.chown(self._path(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        os.utime(self._path(path), ns=times) if times else os.utime(self._path(path))
        return 0

    # Control.

    def command(self, line):
        words = line.split()
        with self.mutex:
            if len(words) == 2 and words[0] in ("eio", "enospc") and words[1] in ("on", "off"):
                setattr(self, words[0], words[1] == "on")
            elif words == ["sync"]:
                self.sync_all()
            elif words != ["stats"]:
                return {"error": f"unknown command {line!r}"}
            return {"ok": True, "eio": self.eio, "enospc": self.enospc, **self.counts,
                    "dirty_files": len(self.files)}

    def serve_control(self, sock_path):
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(sock_path)
        srv.listen(4)

        def loop():
            while True:
                conn, _ = srv.accept()
                with conn, conn.makefile("rw") as f:
                    f.write(json.dumps(self.command(f.readline().strip())) + "\n")

        threading.Thread(target=loop, daemon=True, name="control").start()


def send(control_dir, command, timeout_s=10):
    """Sends one control command to a running file system; returns its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(os.path.join(control_dir, "control.sock"))
        with s.makefile("rw") as f:
            f.write(command + "\n")
            f.flush()
            answer = json.loads(f.readline())
    if "error" in answer:
        raise ValueError(answer["error"])
    return answer


def _durable_tree(durable):
    """{relative path: ("d", None) or ("f", durable size)} of the durable image, and the objects."""
    with open(os.path.join(durable, "names.json")) as f:
        names = json.load(f)
    dirs = {int(k): v for k, v in names["dirs"].items()}
    tree = {}

    def walk(dir_id, rel, seen):
        for name, (inode, kind) in sorted(dirs.get(dir_id, {}).items()):
            path = os.path.join(rel, name) if rel else name
            if kind == "d":
                if inode not in seen:  # a directory has one name only
                    seen.add(inode)
                    tree[path] = ("d", inode)
                    walk(inode, path, seen)
            else:
                obj = os.path.join(durable, "objects", str(inode))
                tree[path] = ("f", obj)

    walk(names["root"], "", {names["root"]})
    return tree


def _tree(root):
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames:
            tree[os.path.normpath(os.path.join(rel, name))] = ("d", None)
        for name in filenames:
            tree[os.path.normpath(os.path.join(rel, name))] = ("f", os.path.join(dirpath, name))
    return tree


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def apply_durable_image(backing, durable):
    """The power loss itself, with the file system unmounted: BACKING becomes DURABLE. Returns
    what was lost, one line each (names not durable, bytes not durable, unlinks undone)."""
    now, kept = _tree(backing), _durable_tree(durable)
    report, lost_dirs = [], set()
    for path in sorted(set(now) | set(kept)):
        if os.path.dirname(path) in lost_dirs:
            lost_dirs.add(path)  # said with its directory
        elif path not in kept:
            lost_dirs.add(path)
            report.append(f"lost name: {path} (its directory was not fsynced after it appeared)")
        elif path not in now:
            report.append(f"back again: {path} (its removal was not made durable)")
        elif now[path][0] == "f" and kept[path][0] == "f" and _size(now[path][1]) != _size(kept[path][1]):
            report.append(f"lost bytes: {path}: {_size(now[path][1])} bytes written, "
                          f"{_size(kept[path][1])} durable")
    for name in os.listdir(backing):
        path = os.path.join(backing, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    for path, (kind, obj) in sorted(kept.items()):
        target = os.path.join(backing, path)
        if kind == "d":
            os.mkdir(target)
        elif os.path.exists(obj):
            shutil.copyfile(obj, target)
        else:
            open(target, "wb").close()  # a name made durable before any of its bytes
    return report


def mounted(mountpoint):
    mp = os.path.realpath(mountpoint)
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mp for line in f)


class PowerLossMount:
    """Runs the file system as a separate process on `root`/{backing,durable,mnt,ctl}."""

    def __init__(self, root):
        self.root = str(root)
        self.backing, self.durable, self.mnt, self.ctl = (
            os.path.join(self.root, n) for n in ("backing", "durable", "mnt", "ctl"))
        for d in (self.backing, self.mnt, self.ctl):
            os.makedirs(d, exist_ok=True)
        self.log_path = os.path.join(self.root, "fs.log")
        self.proc = None

    def mount(self, timeout_s=20):
        assert not mounted(self.mnt)
        try:
            os.unlink(os.path.join(self.ctl, "control.sock"))
        except FileNotFoundError:
            pass
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), self.backing, self.durable, self.mnt,
                 "--control", self.ctl], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not (mounted(self.mnt) and os.path.exists(os.path.join(self.ctl, "control.sock"))):
            if self.proc.poll() is not None:
                raise MountError(f"the file system exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.unmount()
                raise MountError(f"no mount at {self.mnt} after {timeout_s}s:\n{self.log()}")
            time.sleep(0.02)
        return self

    def send(self, command):
        return send(self.ctl, command)

    def unmount(self, timeout_s=20):
        """Unmounts (lazily if busy) and waits for the file system's process to end."""
        if mounted(self.mnt):
            for cmd in (["fusermount3", "-u", self.mnt], ["fusermount3", "-uz", self.mnt],
                        ["umount", "-l", self.mnt]):
                try:
                    if subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0:
                        break
                except (OSError, subprocess.TimeoutExpired):
                    continue
        if self.proc is not None:
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def power_loss(self):
        """Unmounts, then keeps only what was durable. Returns what was lost (see
        `apply_durable_image`)."""
        self.unmount()
        return apply_durable_image(self.backing, self.durable)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class MountError(Exception):
    pass


def fuse_unusable(mount_error=None):
    """Why FUSE cannot be used on this machine, or None: /dev/fuse cannot be opened, or the kernel
    refuses the mount for lack of privilege. Anything else is a failure, not a reason to skip."""
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"/dev/fuse is unusable here: {e}"
    # What libfuse or fusermount3 prints when the kernel or the helper refuses.
    refused = re.search(r"(?:fuse|fusermount3?): (?:failed to open /dev/fuse|mount failed|device not "
                        r"found)[^\n]*", str(mount_error or ""))
    if refused:
        return f"this machine refuses FUSE mounts: {refused.group(0)}"
    return None


def mount_or_skip(root):
    """A mounted `PowerLossMount` on `root`; pytest.skip only when FUSE is unusable here."""
    import pytest
    reason = fuse_unusable()
    if reason:
        pytest.skip(reason)
    pl = PowerLossMount(root)
    try:
        return pl.mount()
    except MountError as e:
        reason = fuse_unusable(e)
        if reason:
            pytest.skip(reason)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--send", nargs=2, metavar=("CTL_DIR", "COMMAND"), help="send a control command")
    ap.add_argument("backing", nargs="?")
    ap.add_argument("durable", nargs="?")
    ap.add_argument("mountpoint", nargs="?")
    ap.add_argument("--control", help="directory for the control socket")
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args()
    if a.send:
        print(json.dumps(send(*a.send)))
        return
    if not (a.backing and a.durable and a.mountpoint and a.control):
        ap.error("BACKING, DURABLE, MOUNTPOINT and --control are needed")
    from mfusepy import FUSE

    class RenameFlagsFUSE(FUSE):
        """mfusepy drops rename's flags (RENAME_NOREPLACE, RENAME_EXCHANGE): pass them on."""

        def rename_fuse_3(self, old, new, flags):
            return self.operations.rename(os.fsdecode(old), os.fsdecode(new), flags)

    fs = PowerLossFS(a.backing, a.durable)
    fs.serve_control(os.path.join(a.control, "control.sock"))
    RenameFlagsFUSE(fs, a.mountpoint, foreground=True, hard_remove=True, fsname="powerloss",
                    debug=a.debug)


if __name__ == "__main__":
    main()
