//! Feeds arbitrary bytes to the broker as one request frame: header parsing, decoding of every
//! advertised API and version, and the handlers behind them. Nothing may panic or abort.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use vltava_broker::connection::dispatch;
use vltava_broker::state::{BrokerState, ConnInfo, ListenerInfo};
use vltava_broker::BrokerConfig;

struct Env {
    rt: tokio::runtime::Runtime,
    state: Arc<BrokerState>,
    conn: ConnInfo,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // On tmpfs when there is one: the file system work of a large request (a 10,000-partition
        // create) is then CPU, not disk latency that other load on the machine stretches.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let dir = base.join(format!("vltava-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = BrokerConfig::new("127.0.0.1:9092".parse().expect("addr"), &dir);
        config.default_partitions = 2;
        let listener = ListenerInfo { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 };
        let state = Arc::new(BrokerState::open(config, vec![listener.clone()]).expect("open broker state"));
        // Paused time: long polls and produce waits resolve at once instead of sleeping.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let conn = ConnInfo { listener, peer_host: "127.0.0.1".into() };
        Env { rt, state, conn }
    })
}

fuzz_target!(|data: &[u8]| {
    let e = env();
    let frame = Bytes::copy_from_slice(data);
    let _ = e.rt.block_on(dispatch(&e.state, &e.conn, frame));
});
