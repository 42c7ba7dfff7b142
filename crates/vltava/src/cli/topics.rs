//! `vltava topics`: list, describe, create, alter-config, add-partitions, delete.

use std::collections::HashMap;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;
use vltava_client::{Client, NewTopic, Watermarks};

use super::{key_value, print_json, ClientArgs, Table};

#[derive(Args)]
#[command(after_help = "Examples:
  vltava topics list
  vltava topics describe orders
  vltava topics create orders --partitions 6 --config retention.ms=604800000
  vltava topics alter-config orders --set retention.ms=86400000 --delete cleanup.policy
  vltava topics add-partitions orders --partitions 12
  vltava topics delete orders")]
pub struct TopicsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// List topics with their partition and record counts.
    #[command(after_help = "Examples:\n  vltava topics list\n  vltava topics list --output json")]
    List,
    /// Partitions (leader, earliest and latest offsets, record counts) and configs of topics.
    #[command(
        after_help = "Examples:\n  vltava topics describe orders\n  vltava topics describe            # every topic\n  vltava topics describe orders -o json"
    )]
    Describe {
        /// Topics to describe; all when none is given.
        topics: Vec<String>,
    },
    /// Create a topic.
    #[command(
        after_help = "Examples:\n  vltava topics create orders --partitions 6\n  vltava topics create users --config cleanup.policy=compact --if-not-exists"
    )]
    Create {
        topic: String,
        /// Number of partitions [default: the broker's default].
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's default].
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// Topic config KEY=VALUE; repeat for several.
        #[arg(long = "config", short = 'c', value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Succeed when the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
        /// Ask the broker to validate the request without creating the topic.
        #[arg(long)]
        validate_only: bool,
    },
    /// Set or remove topic config overrides.
    #[command(
        after_help = "Examples:\n  vltava topics alter-config orders --set retention.ms=86400000\n  vltava topics alter-config orders --delete retention.ms"
    )]
    AlterConfig {
        topic: String,
        /// KEY=VALUE to set; repeat for several.
        #[arg(long = "set", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// KEY to reset to the default; repeat for several.
        #[arg(long = "delete")]
        delete: Vec<String>,
        /// Validate without applying.
        #[arg(long)]
        validate_only: bool,
    },
    /// Grow a topic to a number of partitions (partitions are never removed).
    #[command(after_help = "Example:\n  vltava topics add-partitions orders --partitions 12")]
    AddPartitions {
        topic: String,
        /// The new total number of partitions.
        #[arg(long, short = 'p')]
        partitions: i32,
        /// Validate without applying.
        #[arg(long)]
        validate_only: bool,
    },
    /// Delete a topic and all its records.
    #[command(after_help = "Example:\n  vltava topics delete orders")]
    Delete {
        topic: String,
        /// Succeed when the topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
}

fn wm_map(wms: &[Watermarks]) -> HashMap<(String, i32), &Watermarks> {
    wms.iter()
        .map(|w| ((w.topic.clone(), w.partition), w))
        .collect()
}

pub async fn run(a: TopicsArgs) -> anyhow::Result<()> {
    let json = a.client.json();
    let mut c = a.client.connect().await?;
    match a.command {
        TopicsCommand::List => list(&mut c, json).await,
        TopicsCommand::Describe { topics } => describe(&mut c, topics, json).await,
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
            validate_only,
        } => {
            let t = NewTopic {
                name: topic.clone(),
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs,
            };
            if let Some(p) = partitions {
                if p < 1 {
                    bail!("--partitions must be at least 1");
                }
            }
            match c.create_topic(&t, validate_only).await {
                Err(e) if e.code() == Some(36) && if_not_exists => done(
                    json,
                    &format!("topic '{topic}' already exists"),
                    "exists",
                    &topic,
                ),
                Err(e) => Err(e.into()),
                Ok(()) if validate_only => done(
                    json,
                    &format!("topic '{topic}' would be created"),
                    "validated",
                    &topic,
                ),
                Ok(()) => done(json, &format!("created topic '{topic}'"), "created", &topic),
            }
        }
        TopicsCommand::AlterConfig {
            topic,
            set,
            delete,
            validate_only,
        } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            c.topic(&topic).await?;
            c.alter_topic_configs(&topic, &set, &delete, validate_only)
                .await?;
            let verb = if validate_only {
                "validated"
            } else {
                "altered"
            };
            done(
                json,
                &format!("{verb} configs of topic '{topic}'"),
                verb,
                &topic,
            )
        }
        TopicsCommand::AddPartitions {
            topic,
            partitions,
            validate_only,
        } => {
            let t = c.topic(&topic).await?;
            if partitions <= t.partitions.len() as i32 {
                bail!(
                    "topic '{topic}' has {} partitions; --partitions must be larger (partitions cannot be removed)",
                    t.partitions.len()
                );
            }
            c.create_partitions(&topic, partitions, validate_only)
                .await?;
            done(
                json,
                &format!("topic '{topic}' now has {partitions} partitions"),
                "altered",
                &topic,
            )
        }
        TopicsCommand::Delete { topic, if_exists } => match c.delete_topic(&topic).await {
            Err(e) if e.code() == Some(3) && if_exists => done(
                json,
                &format!("topic '{topic}' does not exist"),
                "absent",
                &topic,
            ),
            Err(e) => Err(e.into()),
            Ok(()) => done(json, &format!("deleted topic '{topic}'"), "deleted", &topic),
        },
    }
}

fn done(json: bool, text: &str, status: &str, topic: &str) -> anyhow::Result<()> {
    if json {
        print_json(&json!({"topic": topic, "status": status}));
    } else {
        println!("{text}");
    }
    Ok(())
}

async fn list(c: &mut Client, json: bool) -> anyhow::Result<()> {
    let md = c.metadata(None, false).await?;
    let names: Vec<String> = md.topics.iter().map(|t| t.name.clone()).collect();
    let wms = c.watermarks(&names).await?;
    let mut records: HashMap<&str, i64> = HashMap::new();
    for w in &wms {
        *records.entry(w.topic.as_str()).or_default() += (w.latest - w.earliest).max(0);
    }
    if json {
        let v: Vec<_> = md
            .topics
            .iter()
            .map(|t| {
                json!({"name": t.name, "partitions": t.partitions.len(), "records": records.get(t.name.as_str()).copied().unwrap_or(0), "internal": t.internal})
            })
            .collect();
        print_json(&json!(v));
        return Ok(());
    }
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "RECORDS"]);
    for t in &md.topics {
        table.row(vec![
            t.name.clone(),
            t.partitions.len().to_string(),
            records
                .get(t.name.as_str())
                .copied()
                .unwrap_or(0)
                .to_string(),
        ]);
    }
    table.print();
    Ok(())
}

async fn describe(c: &mut Client, topics: Vec<String>, json: bool) -> anyhow::Result<()> {
    let names = if topics.is_empty() {
        c.topic_names().await?
    } else {
        topics
    };
    let mut docs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let t = c.topic(name).await?;
        let wms = c.watermarks(std::slice::from_ref(name)).await?;
        let wm = wm_map(&wms);
        let configs = c.topic_configs(name).await?;
        let rf = t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0);
        let total: i64 = wms.iter().map(|w| (w.latest - w.earliest).max(0)).sum();
        if json {
            docs.push(json!({
                "name": t.name,
                "id": t.id,
                "internal": t.internal,
                "replication_factor": rf,
                "records": total,
                "partitions": t.partitions.iter().map(|p| {
                    let w = wm.get(&(name.clone(), p.partition));
                    json!({
                        "partition": p.partition,
                        "leader": p.leader,
                        "replicas": p.replicas,
                        "isr": p.isr,
                        "earliest_offset": w.map(|w| w.earliest),
                        "latest_offset": w.map(|w| w.latest),
                        "records": w.map(|w| (w.latest - w.earliest).max(0)),
                    })
                }).collect::<Vec<_>>(),
                "configs": configs.iter().map(|e| (e.name.clone(), json!({"value": e.value, "source": e.source, "read_only": e.read_only, "sensitive": e.sensitive}))).collect::<serde_json::Map<_, _>>(),
            }));
            continue;
        }
        if i > 0 {
            println!();
        }
        let overrides: Vec<String> = configs
            .iter()
            .filter(|e| e.is_topic_override())
            .map(|e| format!("{}={}", e.name, e.value.as_deref().unwrap_or("")))
            .collect();
        println!(
            "Topic: {}  TopicId: {}  PartitionCount: {}  ReplicationFactor: {}  Records: {}",
            t.name,
            t.id,
            t.partitions.len(),
            rf,
            total
        );
        println!(
            "Configs: {}",
            if overrides.is_empty() {
                "(defaults)".to_string()
            } else {
                overrides.join(",")
            }
        );
        println!();
        let mut table = Table::new(&[
            "PARTITION",
            "LEADER",
            "REPLICAS",
            "ISR",
            "EARLIEST",
            "LATEST",
            "RECORDS",
        ]);
        for p in &t.partitions {
            let w = wm.get(&(name.clone(), p.partition));
            let join = |v: &[i32]| {
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            table.row(vec![
                p.partition.to_string(),
                p.leader.to_string(),
                join(&p.replicas),
                join(&p.isr),
                w.map(|w| w.earliest.to_string()).unwrap_or_default(),
                w.map(|w| w.latest.to_string()).unwrap_or_default(),
                w.map(|w| (w.latest - w.earliest).max(0).to_string())
                    .unwrap_or_default(),
            ]);
        }
        table.print();
        println!();
        let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
        for e in &configs {
            let v = if e.sensitive {
                "(sensitive)".to_string()
            } else {
                e.value.clone().unwrap_or_default()
            };
            table.row(vec![e.name.clone(), v, e.source.to_string()]);
        }
        table.print();
    }
    if json {
        print_json(&json!(docs));
    }
    Ok(())
}
