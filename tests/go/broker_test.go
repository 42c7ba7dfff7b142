// Package franz runs franz-go (kgo and kadm) against the vltava release binary.
//
// Every test starts its own broker as a separate process on free loopback ports with a temporary
// data directory; the process is killed by PID and the directory removed when the test ends, also
// when it fails (the broker log's tail is printed then). Waits are for conditions with deadlines,
// never fixed sleeps.
//
// Run with `cd tests/go && go test -count=1 ./...` (scripts/test.sh does); VLTAVA_BIN names the
// binary, by default ../../target/release/vltava. A test of an API or field that Vltava does not
// serve as Kafka does skips with "broker gap: ..." on exactly that condition, and runs (and must
// pass) once the broker serves it.
package franz

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerBin is VLTAVA_BIN, or the repository's release binary relative to tests/go.
func brokerBin(t testing.TB) string {
	bin := os.Getenv("VLTAVA_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "release", "vltava")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("VLTAVA_BIN %q: %v", bin, err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("vltava binary not found (set VLTAVA_BIN): %v", err)
	}
	return abs
}

// freePorts returns n distinct free loopback ports, none in exclude. All are held open while they
// are picked, so the kernel cannot hand out the same one twice.
func freePorts(t testing.TB, n int, exclude ...int) []int {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen for a free port: %v", err)
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		skip := false
		for _, e := range exclude {
			skip = skip || e == p
		}
		if !skip {
			ports = append(ports, p)
		}
	}
	return ports
}

// waitFor polls cond every interval until it returns true or timeout passes; then fails the test.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Broker is one vltava process; Restart starts it again on the same ports and data dir.
type Broker struct {
	t            testing.TB
	bin          string
	Port         int
	HTTPPort     int
	RegistryPort int
	DataDir      string
	LogPath      string
	args         []string
	started      bool

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartBroker starts vltava with extra serve arguments; it is killed in t.Cleanup.
func StartBroker(t testing.TB, args ...string) *Broker {
	t.Helper()
	dir := t.TempDir() // removed after the kill below: cleanups run last-registered first
	b := &Broker{
		t:       t,
		bin:     brokerBin(t),
		DataDir: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "broker.log"),
		args:    args,
	}
	b.pickPorts()
	t.Cleanup(b.cleanup)
	b.Start()
	return b
}

func (b *Broker) pickPorts() {
	ps := freePorts(b.t, 3)
	b.Port, b.HTTPPort, b.RegistryPort = ps[0], ps[1], ps[2]
}

// Addr is the bootstrap address.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.Port) }

func (b *Broker) running() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// Start runs the binary and waits until its Kafka port accepts connections. A free port can be
// taken by another process between its pick and the broker's bind: on the first start the ports
// are picked again then (later starts must keep them).
func (b *Broker) Start() {
	b.t.Helper()
	if b.running() {
		b.t.Fatalf("broker already running (pid %d)", b.cmd.Process.Pid)
	}
	attempts := 1
	if !b.started {
		attempts = 3
	}
	for attempt := 1; ; attempt++ {
		logStart := len(b.Log())
		err := b.spawn()
		if err == nil {
			b.started = true
			return
		}
		if attempt < attempts && strings.Contains(b.Log()[logStart:], "Address already in use") {
			b.pickPorts()
			continue
		}
		b.t.Fatalf("broker did not start: %v\n--- broker log ---\n%s", err, b.LogTail(8000))
	}
}

func (b *Broker) spawn() error {
	log, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	args := append([]string{"serve",
		"--listen", b.Addr(),
		"--data-dir", b.DataDir,
		"--http", "127.0.0.1:" + strconv.Itoa(b.HTTPPort),
		"--registry", "127.0.0.1:" + strconv.Itoa(b.RegistryPort),
	}, b.args...)
	cmd := exec.Command(b.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Also killed if the test binary dies without running its cleanups (a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(b.done)

	deadline := time.Now().Add(20 * time.Second)
	for {
		if !b.running() {
			return fmt.Errorf("exited: %v", cmd.ProcessState)
		}
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			b.kill()
			return fmt.Errorf("port %d not open after 20s", b.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL to the broker's PID and waits for it to exit.
func (b *Broker) kill() {
	if !b.running() {
		return
	}
	syscall.Kill(b.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.t.Errorf("broker pid %d did not exit 10s after SIGKILL", b.cmd.Process.Pid)
	}
}

// Kill9 kills the broker with SIGKILL (no shutdown of any kind) and waits for its exit.
func (b *Broker) Kill9() {
	b.t.Helper()
	if !b.running() {
		b.t.Fatalf("broker not running")
	}
	b.kill()
}

// Terminate sends SIGTERM and waits for a clean exit.
func (b *Broker) Terminate() {
	b.t.Helper()
	syscall.Kill(b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		b.t.Fatalf("broker pid %d did not exit 20s after SIGTERM", b.cmd.Process.Pid)
	}
}

// Restart starts the broker again on the same ports and data dir (killing it first if running).
func (b *Broker) Restart() {
	b.t.Helper()
	b.kill()
	b.Start()
}

// Log is the broker's combined stdout and stderr so far.
func (b *Broker) Log() string {
	data, _ := os.ReadFile(b.LogPath)
	return string(data)
}

// LogTail is the last n bytes of the log.
func (b *Broker) LogTail(n int) string {
	l := b.Log()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return l
}

func (b *Broker) cleanup() {
	b.kill()
	if b.t.Failed() {
		b.t.Logf("--- broker log (%s, %s) tail ---\n%s", b.Addr(), b.LogPath, b.LogTail(8000))
	}
}

// Client is a kgo client of b, closed in t.Cleanup (before the broker is killed).
func (b *Broker) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(b.Addr()),
		kgo.WithLogger(testLogger{t}),
		kgo.RetryTimeout(30 * time.Second),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin is a kadm client of b over its own kgo client.
func (b *Broker) Admin(t testing.TB) *kadm.Client {
	return kadm.NewClient(b.Client(t))
}

// testLogger forwards kgo's warnings and errors to the test log (shown on failure or with -v).
type testLogger struct{ t testing.TB }

func (l testLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l testLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "kgo %s: %s", level, msg)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&buf, " %v=%v", kv[i], kv[i+1])
	}
	defer func() { recover() }() // a client goroutine may log after the test ended
	l.t.Log(buf.String())
}

// ctxT is a context that ends at the deadline or when the test ends.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// createTopic creates a topic with kadm and fails the test on any error.
func createTopic(t testing.TB, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopic(ctxT(t, 30*time.Second), partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
}

func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
