"""Records real clients' request frames as fuzzing seeds.

Starts `vltava serve` behind a recording TCP proxy (the broker advertises the proxy, so every
connection goes through it), runs confluent-kafka and kafka-python through produce, fetch,
offsets and admin calls, and writes each client->broker frame (without its size prefix) to
fuzz/seeds/. Usage: python3 fuzz/make_seeds.py [path/to/vltava]
"""
import hashlib, os, shutil, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "vltava")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save(frame):
    name = hashlib.sha1(frame).hexdigest()[:16]
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(frame)


def pump(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record:
                buf += data
                while len(buf) >= 4:
                    n = int.from_bytes(buf[:4], "big")
                    if len(buf) < 4 + n:
                        break
                    save(buf[4:4 + n])
                    buf = buf[4 + n:]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen_port, broker_port, stop):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen()
    ls.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        b = socket.create_connection(("127.0.0.1", broker_port))
        threading.Thread(target=pump, args=(c, b, True), daemon=True).start()
        threading.Thread(target=pump, args=(b, c, False), daemon=True).start()
    ls.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    data = tempfile.mkdtemp(prefix="vltava-seeds-")
    bport, pport = free_port(), free_port()
    broker = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{bport}", "--advertise", f"127.0.0.1:{pport}",
                               "--data-dir", data, "--default-partitions", "2"], stdout=subprocess.DEVNULL)
    stop = threading.Event()
    threading.Thread(target=proxy, args=(pport, bport, stop), daemon=True).start()
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", bport), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        bs = f"127.0.0.1:{pport}"
        from confluent_kafka import Consumer, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
        admin = AdminClient({"bootstrap.servers": bs})
        for f in admin.create_topics([NewTopic("seed", 2, 1, config={"retention.ms": "100000"})]).values():
            f.result()
        for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
            p = Producer({"bootstrap.servers": bs, "compression.type": codec, "enable.idempotence": True})
            for i in range(20):
                p.produce("seed", key=f"k{i}", value=f"value {i}", headers={"h": b"1"})
            p.flush(10)
        c = Consumer({"bootstrap.servers": bs, "group.id": "seed", "enable.auto.commit": False})
        c.assign([TopicPartition("seed", 0, 0), TopicPartition("seed", 1, 0)])
        c.consume(50, 2.0)
        c.offsets_for_times([TopicPartition("seed", 0, int(time.time() * 1000) - 60000)])
        c.close()
        for f in admin.describe_configs([ConfigResource("topic", "seed")]).values():
            f.result()
        for f in admin.create_partitions([NewPartitions("seed", 3)]).values():
            f.result()
        for f in admin.delete_topics(["seed"]).values():
            f.result()
        from kafka import KafkaConsumer, KafkaProducer
        from kafka import TopicPartition as KTP
        kp = KafkaProducer(bootstrap_servers=bs)
        kp.send("seed2", b"v", key=b"k").get(10)
        kp.close()
        kc = KafkaConsumer(bootstrap_servers=bs, group_id=None, consumer_timeout_ms=1000)
        kc.assign([KTP("seed2", 0)])
        kc.seek_to_beginning()
        list(kc)
        kc.close()
    finally:
        stop.set()
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    print(f"{len(os.listdir(OUT))} seeds in {OUT}")


if __name__ == "__main__":
    main()
