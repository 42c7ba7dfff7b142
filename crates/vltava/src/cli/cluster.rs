//! `vltava cluster`: brokers, controller, versions and supported APIs.

use clap::Args;
use serde_json::json;
use vltava_client::conn::api_name;

use super::{print_json, ClientArgs, Table};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  vltava cluster\n  vltava cluster --apis\n  vltava cluster -b kafka:9092 -o json"
)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Also list every API the bootstrap broker supports, with its version range.
    #[arg(long)]
    pub apis: bool,
}

pub async fn run(a: ClusterArgs) -> anyhow::Result<()> {
    let mut c = a.client.connect().await?;
    let info = c.describe_cluster().await?;
    let apis = c.api_versions().await?;
    if a.client.json() {
        print_json(&json!({
            "cluster_id": info.cluster_id,
            "controller_id": info.controller_id,
            "client_version": env!("CARGO_PKG_VERSION"),
            "brokers": info.brokers.iter().map(|b| json!({"id": b.id, "host": b.host, "port": b.port, "rack": b.rack})).collect::<Vec<_>>(),
            "apis": apis.iter().map(|(k, min, max)| json!({"key": k, "name": api_name(*k), "min_version": min, "max_version": max})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("Cluster id:  {}", info.cluster_id.as_deref().unwrap_or("-"));
    println!("Controller:  {}", info.controller_id);
    println!("Client:      vltava {}", env!("CARGO_PKG_VERSION"));
    println!(
        "APIs:        {} supported by {}",
        apis.len(),
        a.client.bootstrap
    );
    println!();
    let mut t = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
    for b in &info.brokers {
        t.row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.print();
    if a.apis {
        println!();
        let mut t = Table::new(&["KEY", "API", "MIN", "MAX"]);
        for (k, min, max) in &apis {
            t.row(vec![
                k.to_string(),
                api_name(*k),
                min.to_string(),
                max.to_string(),
            ]);
        }
        t.print();
    }
    Ok(())
}
