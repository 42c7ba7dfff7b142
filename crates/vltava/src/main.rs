//! The `vltava` command: `vltava serve` runs the broker; the other subcommands are Kafka clients
//! of the cluster at `--bootstrap` (Vltava or any Kafka-compatible cluster).

mod bench;
mod cli;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vltava",
    version,
    about = "Vltava: a Kafka-compatible event-streaming platform in one binary",
    after_help = "Examples:
  vltava serve                                  # start a broker on localhost:9092
  vltava topics create orders --partitions 3
  echo 'o-1:{\"total\":12}' | vltava produce orders -K :
  vltava consume orders --format '{key} {value}'
  vltava groups describe billing
  vltava completions bash > /etc/bash_completion.d/vltava"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    #[command(
        after_help = "Examples:\n  vltava serve\n  vltava serve --listen 0.0.0.0:9092 --advertise kafka.example.com:9092\n  vltava serve --listener INTERNAL=0.0.0.0:29092 --advertise INTERNAL=kafka:29092 \\\n               --listener EXTERNAL=0.0.0.0:9092 --advertise EXTERNAL=localhost:9092"
    )]
    Serve(serve::ServeArgs),
    /// List, describe, create, alter and delete topics.
    Topics(cli::topics::TopicsArgs),
    /// Produce records from stdin, a file or the command line.
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic, alone or as a consumer group member.
    Consume(cli::consume::ConsumeArgs),
    /// List and describe consumer groups (with lag), reset their offsets, delete them.
    Groups(cli::groups::GroupsArgs),
    /// Earliest, latest and by-time offsets per partition.
    Offsets(cli::offsets::OffsetsArgs),
    /// Delete the records of partitions before an offset.
    DeleteRecords(cli::offsets::DeleteRecordsArgs),
    /// Brokers, controller and supported APIs of the cluster.
    Cluster(cli::cluster::ClusterArgs),
    /// Measure throughput, end-to-end latency, start-up and recovery against this machine's ceilings.
    Bench(bench::BenchArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  vltava completions bash > ~/.local/share/bash-completion/completions/vltava\n  vltava completions zsh > ~/.zfunc/_vltava\n  vltava completions fish > ~/.config/fish/completions/vltava.fish"
    )]
    Completions { shell: clap_complete::Shell },
}

/// Logs to stderr: text, with ANSI colour only when stderr is a terminal (and `NO_COLOR` is
/// unset), or one JSON object per line.
fn init_logging(filter: &str, format: serve::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        serve::LogFormat::Json => builder.json().with_current_span(false).init(),
        serve::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}

/// The broker's runtime workers per core. Its tasks make file system calls (appends into the
/// page cache, `sendfile` and reads from it) that take microseconds, except while the disk is
/// slow, when one waits for a page under write-back (5-12 ms seen: BENCHMARKS.md, sixth pass);
/// a spare worker per core keeps the other connections served meanwhile. The environment's
/// `TOKIO_WORKER_THREADS` overrides it.
const SERVE_WORKERS_PER_CORE: usize = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "vltava", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    match &cli.command {
        Command::Serve(args) => init_logging(&args.log, args.log_format),
        _ => init_logging(
            &std::env::var("VLTAVA_LOG").unwrap_or_else(|_| "warn,rdkafka=off".into()),
            serve::LogFormat::Text,
        ),
    }
    // The bench too: its clients and baselines move a gigabyte through large buffers.
    if matches!(cli.command, Command::Serve(_) | Command::Bench(_)) {
        tune_allocator();
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if matches!(cli.command, Command::Serve(_))
        && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        runtime.worker_threads(cores * SERVE_WORKERS_PER_CORE);
    }
    let rt = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::serve(a).await,
            Command::Topics(a) => cli::topics::run(a).await,
            Command::Produce(a) => cli::produce::run(a).await,
            Command::Consume(a) => cli::consume::run(a).await,
            Command::Groups(a) => cli::groups::run(a).await,
            Command::Offsets(a) => cli::offsets::offsets(a).await,
            Command::DeleteRecords(a) => cli::offsets::delete_records(a).await,
            Command::Cluster(a) => cli::cluster::run(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Completions { .. } => Ok(()),
        }
    });
    // librdkafka threads may outlive the runtime; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps the broker's request and fetch buffers in the heap between requests. glibc's defaults
/// hand a freed buffer of a megabyte or more back to the kernel (munmap, or trimming the heap),
/// so every produce request and fetch read faulted in and zeroed fresh pages — on a VM whose
/// host reclaims freed guest memory, a first touch costs microseconds per page. With these,
/// buffers below 32 MiB come from the heap and up to 64 MiB of free heap is kept per arena, in
/// at most four arenas: bounded extra memory after a burst, no page faults in steady state.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    const MMAP_THRESHOLD_BYTES: libc::c_int = 32 << 20;
    const TRIM_THRESHOLD_BYTES: libc::c_int = 64 << 20;
    const ARENAS: libc::c_int = 4;
    // SAFETY: mallopt only changes allocator parameters and is thread-safe; it runs before the
    // runtime starts. A refused value (0) leaves glibc's default, which is correct, only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
