"""Starts the `vltava` binary as a separate process for real-client tests.

Every broker gets a free port and its own temporary data directory; it is stopped by PID and its
directory removed when the test ends. Waits are for conditions with deadlines, never fixed sleeps.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("VLTAVA_BIN", os.path.join(REPO, "target", "release", "vltava"))
NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def free_ports(n, exclude=()):
    """`n` distinct free loopback ports, none in `exclude`: all are held open while they are
    picked, so the kernel cannot hand the same one out twice."""
    socks = []
    try:
        while len(socks) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in exclude:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def wait_until(predicate, timeout_s=15.0, interval_s=0.05, what="condition"):
    """Polls `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Broker:
    def __init__(self, args=(), port=None, advertise=None, data_dir=None):
        # Ports picked here may be re-picked if another process takes one before the first start.
        self.own_ports = port is None
        self.started = False
        self.port = port
        self.pick_ports()
        # A given data dir (e.g. on a test file system) belongs to the caller: kept, log elsewhere.
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="vltava-test-")
        self.log_path = self.data_dir + ".log"
        if not self.own_dir:
            fd, self.log_path = tempfile.mkstemp(prefix="vltava-test-", suffix=".log")
            os.close(fd)
        self.args = list(args)
        self.advertise = advertise
        self.proc = None

    def pick_ports(self):
        fixed = () if self.own_ports else (self.port,)
        ports = free_ports(3 - len(fixed), exclude=fixed)
        if self.own_ports:
            self.port = ports.pop(0)
        self.http_port, self.registry_port = ports

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def registry(self):
        """Base URL of the Confluent-compatible Schema Registry API."""
        return f"http://127.0.0.1:{self.registry_port}"

    def command(self):
        cmd = [BIN, "serve", "--listen", self.bootstrap, "--data-dir", self.data_dir,
               "--http", f"127.0.0.1:{self.http_port}"]
        if "--no-registry" not in self.args:
            cmd += ["--registry", f"127.0.0.1:{self.registry_port}"]
        if self.advertise:
            cmd += ["--advertise", self.advertise]
        return cmd + self.args

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        # A free port can be taken by another process (a client's ephemeral port) between its
        # pick and the broker's bind: on the first start, ports picked here are picked again.
        attempts = 3 if self.own_ports and not self.started else 1
        for attempt in range(attempts):
            log_start = len(self.log())
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log)
            log.close()
            wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 15, what="broker port")
            if self.proc.poll() is None:
                self.started = True
                return self
            if attempt + 1 < attempts and "Address already in use" in self.log()[log_start:]:
                self.pick_ports()
                continue
            break
        raise AssertionError(f"broker exited with {self.proc.returncode}:\n{self.log()}")

    def wait_registry(self, timeout_s=30):
        """Waits until the Schema Registry answers GET /subjects with 200 (it may come up after the
        broker port, once the _schemas topic has been read)."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return requests.get(f"{self.registry}/subjects", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, timeout_s, interval_s=0.1, what="schema registry GET /subjects")
        return self

    def terminate(self, timeout_s=20):
        """SIGTERM; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self):
        if self.proc and self.proc.poll() is None:
            self.terminate()
        return self.start()

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.remove(self.log_path)
        except OSError:
            pass


@pytest.fixture
def broker_factory(request):
    brokers = []

    def make(*args, start=True, **kw):
        b = Broker(args, **kw)
        brokers.append(b)
        return b.start() if start else b

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for b in brokers:
        if failed:
            print(f"--- broker log ({b.bootstrap}) ---\n{b.log()[-8000:]}")
        b.cleanup()


@pytest.fixture
def procs(tmp_path, request):
    """The processes of the example in the test module's EXAMPLE folder, stopped at teardown."""
    from util import ExampleProcs
    ps = ExampleProcs(tmp_path, request.module.EXAMPLE)
    yield ps
    ps.stop_all()
    ps.print_logs_if_failed(request)


@pytest.fixture
def broker(broker_factory):
    return broker_factory("--default-partitions", "6")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def run_node(script, *args, timeout_s=120):
    """Runs tests/clients/node/<script> with Node; returns its stdout (fails on non-zero exit)."""
    r = subprocess.run(["node", os.path.join(NODE_DIR, script), *args], capture_output=True, text=True,
                       timeout=timeout_s, cwd=NODE_DIR)
    assert r.returncode == 0, f"node {script} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def run(cmd, timeout_s=120, input_bytes=None, check=True):
    r = subprocess.run(cmd, capture_output=True, timeout=timeout_s, input=input_bytes)
    if check:
        assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def pytest_terminal_summary(terminalreporter):
    """Says where the console's screenshots are (CI keeps that folder as an artefact)."""
    shots = os.environ.get("VLTAVA_SCREENSHOT_DIR", os.path.join(REPO, "target", "console-screenshots"))
    if os.path.isdir(shots) and os.listdir(shots):
        terminalreporter.write_line(f"console screenshots ({len(os.listdir(shots))} files): {shots}")
