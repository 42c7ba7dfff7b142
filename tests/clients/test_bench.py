"""`vltava bench` runs end to end in a small configuration and reports coherent figures.

No speed is asserted (figures live in BENCHMARKS.md); these tests prove the harness measures what
it says: the records it reports are in the broker (read back with confluent-kafka), its baselines
moved the same bytes, its start-up and recovery scenarios restart a real broker, and the commits
its commit scenario counts are the offsets the groups hold."""
import json
import os
import subprocess

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import BIN
from util import watermarks

pytestmark = pytest.mark.timeout(300)


def bench(*args, tmp_path, check=True, timeout_s=240):
    out = tmp_path / "bench.json"
    cmd = [BIN, "bench", "--data-dir", str(tmp_path / "data"), "--json", str(out), *args]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout_s)
    if not check:
        return r, None
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout.decode()}\n{r.stderr.decode()[-4000:]}"
    return r, json.loads(out.read_text())


def test_workload_with_its_own_broker_and_baselines(tmp_path):
    r, rep = bench("--records", "20000", "--partitions", "3", "--producers", "2", "--consumers", "2",
                   "--e2e-secs", "1", "--e2e-warmup-secs", "1", "--e2e-rate", "2000",
                   "--idle-consumers", "4", tmp_path=tmp_path)
    text = r.stdout.decode()
    for line in ("produce ", "minimal sink", "consume ", "raw loopback", "e2e ", "broker ", "clients "):
        assert line in text, text
    p, c, e, b = rep["produce"], rep["consume"], rep["e2e"], rep["broker"]
    assert p["records"] == 20000 and p["records_per_s"] > 0
    # The broker saw the batches: its own counters, and one fsync at least.
    assert p["batch_bytes"] >= 20000 * 1024 and p["requests"] >= 1 and p["fsyncs"] >= 1
    assert p["sink"]["bytes"] == p["batch_bytes"] and p["sink"]["fsyncs"] >= 1
    assert 0 < p["fraction_of_sink"]
    assert c["records"] >= 20000 and c["batch_bytes"] >= 20000 * 1024
    assert 0 < c["fraction_of_loopback"]
    # The consumers' fetch thread, read from /proc (whole 10 ms ticks: a short phase may read 0).
    ft = c["fetch_thread_cpu"]
    assert ft["wall_s"] > 0 and 0 <= ft["cpu_s"] <= ft["wall_s"] + 0.02, ft
    assert "librdkafka broker thread" in text
    # The bound the clients' CPU puts on consumption: all cores at their CPU per byte plus what
    # loopback's sender paid per byte.
    assert c["client_bound_mb_per_s"] > 0 and c["loopback"]["sender_cpu_s"] > 0
    assert "no broker could serve these clients" in text
    # One second of warm-up and one measured, at 2000/s: only the second one's records count.
    assert e["records"] == 4000 and 1000 <= e["latency"]["samples"] < 4000, e
    lat = e["latency"]
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["p999_ms"] <= lat["max_ms"]
    # The floor under it: the sink acknowledged one request per linger.ms (1 ms) for the same two
    # seconds; those sent after the warm-up second were measured.
    floor = e["sink_ack_latency"]
    assert 1000 <= floor["samples"] <= 2000, floor
    assert 0 < floor["p50_ms"] <= floor["p99_ms"] <= floor["max_ms"]
    assert "records/s, one request per 1 ms: ack latency" in text
    # How busy broker and clients kept the cores over the phase.
    assert 0 < e["cores_busy_fraction"] <= 1.05, e
    assert "the cores: broker and clients used" in text
    assert 0 <= e["steal_fraction"] <= 1 and "the hypervisor took" in text, e
    # Four idle consumers long-polled (500 ms) an empty topic over the two-second phase: each
    # fetch they sent was answered, beside the group's own fetches.
    assert e["idle_consumers"] == 4 and "4 idle consumers long-polled an empty topic" in text
    assert e["broker_fetches"] >= 4 * 2, e
    # Per record, the floor adds each record's wait for its request (2 per 1 ms request at
    # 2000/s: 0.25 and 0.75 ms), as the producer's latency includes its linger.
    per_record = e["sink_record_latency"]
    assert per_record["samples"] == 2 * floor["samples"], per_record
    assert floor["p50_ms"] < per_record["p50_ms"] <= floor["max_ms"] + 1, (floor, per_record)
    assert "with its wait for the request" in text
    # What the broker's own histograms counted over the phase (bucket bounds): its fsyncs and
    # its produce requests, each quantile at most its bound.
    for h in (e["broker_fsync"], e["broker_produce_request"]):
        assert h["count"] >= 1, h
        bounds = [h["p50_ms_at_most"], h["p99_ms_at_most"], h["p999_ms_at_most"], h["max_ms_at_most"]]
        finite = [b for b in bounds if b is not None]
        assert finite == sorted(finite) and all(b > 0 for b in finite), h
    assert e["broker_produce_request"]["count"] >= 2, e["broker_produce_request"]
    assert "the broker, warm-up included" in text
    # The block device under the data directory over the phase and over the floor's (none on
    # tmpfs): the floor fsynced its file, so the device completed writes and flushes.
    assert (e["disk"] is None) == (e["sink_disk"] is None), e
    for d in (e["disk"], e["sink_disk"]):
        if d is not None:
            assert d["device"] and d["windows"] >= 1 and 0 <= d["slow_windows"] <= d["windows"], d
            assert d["worst_window_ms"] >= 0 and d["writes"] >= 0 and d["flushes"] >= 0, d
    if e["sink_disk"] is not None:
        assert e["sink_disk"]["writes"] >= 1, e["sink_disk"]
        assert text.count("the disk (") == 2, text
    else:
        assert "the disk (" not in text, text
    assert b["spawned"] and 0 < b["idle_rss_bytes"] <= b["peak_rss_bytes"] and b["cpu_s"] > 0
    assert rep["workload"]["partitions"] == 3
    # The clients' own CPU, per phase: they produced and consumed 20 MB, which takes some.
    assert rep["clients"]["produce_cpu_s"] > 0 and rep["clients"]["consume_cpu_s"] > 0


def test_against_an_external_broker_the_records_are_really_there(broker, tmp_path):
    r, rep = bench("--bootstrap", broker.bootstrap, "--http", f"127.0.0.1:{broker.http_port}",
                   "--broker-pid", str(broker.proc.pid), "--records", "5000", "--partitions", "2",
                   "--e2e-secs", "1", "--e2e-warmup-secs", "0", "--e2e-rate", "1000", "--no-baselines",
                   tmp_path=tmp_path)
    assert "sink" not in rep["produce"] and rep["broker"]["spawned"] is False
    # With its HTTP API the external broker's histograms are read too.
    assert rep["e2e"]["broker_fsync"]["count"] >= 1, rep["e2e"]
    assert rep["broker"]["cpu_s"] > 0
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    bench_topics = sorted(t for t in topics if t.startswith("bench-"))
    assert len(bench_topics) == 2, bench_topics
    counts = {t: sum(hi - lo for lo, hi in watermarks(broker.bootstrap, t, 2)) for t in bench_topics}
    # The throughput topic holds the 5000 records, the end-to-end one the 1000 sent at 1000/s.
    assert sorted(counts.values()) == [1000, 5000], counts


def test_e2e_rate_is_a_fraction_of_the_measured_end_to_end_maximum(broker, tmp_path):
    _, rep = bench("--bootstrap", broker.bootstrap, "--broker-pid", str(broker.proc.pid),
                   "--records", "4000", "--partitions", "2", "--e2e-secs", "1", "--e2e-warmup-secs", "0",
                   "--e2e-rate-fraction", "0.1", "--no-baselines", tmp_path=tmp_path)
    mx, e = rep["e2e_max"], rep["e2e"]
    assert mx["records"] == 2000 and mx["records_per_s"] > 0
    # Without the broker's HTTP API there are no histograms to read: none are made up.
    assert e["broker_fsync"] is None and e["broker_produce_request"] is None
    assert e["target_records_per_s"] == pytest.approx(0.1 * mx["records_per_s"])
    # The unpaced run's records went through its own topic, next to the throughput and e2e ones.
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    probe = [t for t in topics if t.startswith("bench-") and t.endswith("-e2e-max")]
    assert len(probe) == 1, sorted(topics)
    assert sum(hi - lo for lo, hi in watermarks(broker.bootstrap, probe[0], 2)) == 2000


def test_startup_and_recovery_restart_a_real_broker(tmp_path):
    _, rep = bench("--scenario", "startup", "--startup-partitions", "250", "--startup-restarts", "2",
                   "--startup-active-mib", "4", tmp_path=tmp_path)
    s = rep["startup"]
    assert s["partitions"] == 250 and len(s["restarts_ms"]) == 2 and s["idle_rss_bytes"] > 0
    assert len(s["shutdowns_ms"]) == 2 and min(s["shutdowns_ms"]) > 0
    # The active segments' bytes are on disk in the topic's two partition directories.
    assert s["active_bytes"] == 4 * 1024 * 1024, s
    active = tmp_path / "data" / "startup"
    on_disk = sum(os.path.getsize(active / d / f) for d in ("bench-active-0", "bench-active-1")
                  for f in os.listdir(active / d) if f.endswith(".log"))
    assert on_disk >= 4 * 1024 * 1024, on_disk
    # 3 topics of up to 100 partitions, each partition with its own directory.
    dirs = [d for d in os.listdir(tmp_path / "data" / "startup") if d.startswith("bench-startup-")]
    assert len(dirs) == 250, len(dirs)
    _, rep = bench("--scenario", "recovery", "--recovery-mib", "16", tmp_path=tmp_path)
    rec = rep["recovery"]
    assert rec["log_bytes"] == 16 * 1024 * 1024 and rec["records"] == 1024 and rec["recovery_ms"] > 0


def test_commits_counted_are_the_offsets_the_groups_hold(broker, tmp_path):
    _, rep = bench("--scenario", "commits", "--bootstrap", broker.bootstrap,
                   "--http", f"127.0.0.1:{broker.http_port}", "--broker-pid", str(broker.proc.pid),
                   "--committers", "3", "--commit-secs", "1", "--partitions", "2", tmp_path=tmp_path)
    c = rep["commits"]
    assert c["committers"] == 3 and c["commits"] > 0 and c["latency"]["samples"] == c["commits"]
    assert c["broker_cpu_s"] > 0 and c["clients_cpu_s"] > 0
    # Every commit the bench counted reached the broker, plus each committer's warm-up commit.
    assert c["broker_offset_commit_request"]["count"] == c["commits"] + 3, c
    assert c["fsync_floor"]["fsyncs_per_s"] > 0 and c["ratio_to_fsync_floor"] > 0
    assert c["probe_alone"]["samples"] > 0 and c["probe_during_commits"]["samples"] > 0
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    [topic] = [t for t in topics if t.startswith("bench-") and t.endswith("-commits")]
    [probe] = [t for t in topics if t.startswith("bench-") and t.endswith("-probe")]
    # Committer i committed 1, 2, 3 ... on partition i % 2 of its own group, so the offsets the
    # groups hold (read back by librdkafka) add up to the commits counted.
    held = 0
    for i in range(3):
        group = topic[: -len("commits")] + f"commit-{i}"
        cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
        try:
            [tp] = cons.committed([TopicPartition(topic, i % 2)], timeout=10)
        finally:
            cons.close()
        assert tp.error is None and tp.offset > 0, (group, tp)
        held += tp.offset
    assert held == c["commits"], (held, c["commits"])
    acked = c["probe_alone"]["samples"] + c["probe_during_commits"]["samples"]
    assert sum(hi - lo for lo, hi in watermarks(broker.bootstrap, probe, 1)) == acked


def machine_steal_ticks():
    """The steal column of /proc/stat's "cpu" line (all cores), in clock ticks."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    assert fields[0] == "cpu", fields
    return int(fields[8])


def test_busy_cores_runs_the_floor_with_each_number_of_busy_cores(tmp_path):
    steal_before = machine_steal_ticks()
    _, rep = bench("--scenario", "busy-cores", "--e2e-rate", "1000", "--e2e-secs", "1",
                   "--e2e-warmup-secs", "0", "--record-size", "100", tmp_path=tmp_path)
    b = rep["busy_cores"]
    cores = os.cpu_count()
    assert b["records_per_s"] == 1000 and b["record_bytes"] == 100 and b["linger_ms"] == 1
    assert [r["busy_cores"] for r in b["runs"]] == list(range(cores + 1)), b
    for r in b["runs"]:
        # One request per millisecond for one second, one record each, every one acknowledged.
        assert r["ack_latency"]["samples"] == 1000 and r["record_latency"]["samples"] == 1000, r
        assert r["ack_latency"]["p50_ms"] > 0
        # The hypervisor's share of the cores' time, from /proc/stat: none when it took none.
        assert 0 <= r["steal_fraction"] <= 1, r
    if machine_steal_ticks() == steal_before:
        assert all(r["steal_fraction"] == 0 for r in b["runs"]), b["runs"]
    # The sink's file is gone after each run.
    assert not list((tmp_path / "data").rglob("sink.log"))


def test_bad_arguments_fail_with_one_line(tmp_path):
    for args, expect in [
        (["--record-size", "4"], "--record-size must be at least 8"),
        (["--partitions", "0"], "must be at least 1"),
        (["--e2e-rate-fraction", "1.5"], "--e2e-rate-fraction must be in (0, 1]"),
        (["--scenario", "startup", "--bootstrap", "127.0.0.1:1"], "need a broker the bench starts"),
        (["--scenario", "commits", "--committers", "0"], "--committers and --commit-secs must be at least 1"),
        (["--bootstrap", "127.0.0.1:1", "--records", "10"], "did not answer"),
    ]:
        r, _ = bench(*args, tmp_path=tmp_path, check=False, timeout_s=120)
        err = r.stderr.decode().strip().splitlines()
        assert r.returncode == 1, (args, r.stdout, err)
        assert err and err[-1].startswith("error: ") and expect in err[-1], (args, err)


def test_bench_clients_measures_the_java_client_beside_librdkafka(tmp_path):
    """scripts/bench-clients runs vltava bench and Kafka's perf tools against one broker and
    reports every row with figures that follow from what was sent (nothing about speed)."""
    out = tmp_path / "clients.json"
    records = 20_000
    r = subprocess.run(
        [os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "bench-clients"),
         "--records", str(records), "--record-size", "100", "--vltava", BIN,
         "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(x["client"].split()[0], x["phase"]) for x in rows] == [
        ("librdkafka", "produce"), ("librdkafka", "consume"),
        ("Java", "produce"), ("Java", "consume")]
    for x in rows:
        assert x["records_per_s"] > 0 and x["broker_cpu_s_per_gb"] >= 0, x
        # 100-byte values: MB/s is records/s × 100 B (within rounding of the tools' output).
        assert abs(x["mb_per_s"] - x["records_per_s"] * 100 / 1e6) <= 0.02 * x["mb_per_s"] + 0.1, x
        if x["phase"] == "produce":
            assert 0 <= x["p50_ms"] <= x["p99_ms"] <= x["p999_ms"], x
    assert "kafka-producer-perf-test" in r.stdout
