//! `vltava groups`: list, describe (with lag), reset-offsets, delete.

use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;
use vltava_client::{Client, GroupLag, ResetTarget};

use super::{now_ms, parse_time_ms, print_json, topic_partitions, ClientArgs, Table};

#[derive(Args)]
#[command(after_help = "Examples:
  vltava groups list
  vltava groups describe billing
  vltava groups reset-offsets billing --topic orders --to-earliest            # dry run
  vltava groups reset-offsets billing --topic orders:0,1 --shift-by -10 --execute
  vltava groups delete billing")]
pub struct GroupsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups with their state.
    #[command(after_help = "Example:\n  vltava groups list -o json")]
    List,
    /// Per partition: committed offset, log end offset, lag and the member that owns it.
    #[command(
        after_help = "Examples:\n  vltava groups describe billing\n  vltava groups describe billing audit -o json"
    )]
    Describe {
        /// Groups to describe.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets. A dry run unless --execute is given; the group must
    /// have no active members.
    #[command(
        group(ArgGroup::new("scope").required(true).args(["topics", "all_topics"])),
        group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by", "by_duration"])),
        after_help = "Examples:\n  vltava groups reset-offsets billing --topic orders --to-earliest\n  vltava groups reset-offsets billing --all-topics --to-datetime 2026-11-22T09:00:00Z --execute\n  vltava groups reset-offsets billing --topic orders:2 --to-offset 1500 --execute"
    )]
    ResetOffsets {
        group: String,
        /// TOPIC or TOPIC:P,P,...; repeat for several.
        #[arg(long = "topic", short = 't')]
        topics: Vec<String>,
        /// Every topic the group has committed offsets for.
        #[arg(long)]
        all_topics: bool,
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_latest: bool,
        #[arg(long)]
        to_offset: Option<i64>,
        /// RFC 3339 time, epoch ms or a duration ago; the first offset at or after it.
        #[arg(long)]
        to_datetime: Option<String>,
        /// Move each offset by N (negative: back).
        #[arg(long, allow_negative_numbers = true)]
        shift_by: Option<i64>,
        /// The offset at this long ago (e.g. 1h, 30m).
        #[arg(long)]
        by_duration: Option<String>,
        /// Apply the change (without it, only show it).
        #[arg(long)]
        execute: bool,
    },
    /// Delete groups and their committed offsets (they must have no active members).
    #[command(after_help = "Example:\n  vltava groups delete billing")]
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

pub async fn run(a: GroupsArgs) -> anyhow::Result<()> {
    let json = a.client.json();
    let mut c = a.client.connect().await?;
    match a.command {
        GroupsCommand::List => list(&mut c, json).await,
        GroupsCommand::Describe { groups } => {
            let mut docs = Vec::new();
            for (i, g) in groups.iter().enumerate() {
                let d = c.group_lag(g).await?;
                if json {
                    docs.push(d.to_json());
                } else {
                    if i > 0 {
                        println!();
                    }
                    d.print();
                }
            }
            if json {
                print_json(&json!(docs));
            }
            Ok(())
        }
        GroupsCommand::ResetOffsets {
            group,
            topics,
            all_topics,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            shift_by,
            by_duration,
            execute,
        } => {
            let target = if to_earliest {
                ResetTarget::Earliest
            } else if to_latest {
                ResetTarget::Latest
            } else if let Some(o) = to_offset {
                ResetTarget::Offset(o)
            } else if let Some(t) = to_datetime {
                ResetTarget::Time(parse_time_ms(&t, now_ms())?)
            } else if let Some(n) = shift_by {
                ResetTarget::Shift(n)
            } else if let Some(d) = by_duration {
                let d = humantime::parse_duration(d.trim_start_matches('-'))
                    .map_err(|e| anyhow::anyhow!("--by-duration '{d}': {e}"))?;
                ResetTarget::Time(now_ms() - d.as_millis() as i64)
            } else {
                bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by, --by-duration");
            };
            reset(&mut c, &group, &topics, all_topics, target, execute, json).await
        }
        GroupsCommand::Delete { groups } => {
            for g in &groups {
                c.delete_group(g).await?;
                if !json {
                    println!("deleted group '{g}'");
                }
            }
            if json {
                print_json(&json!(groups
                    .iter()
                    .map(|g| json!({"group": g, "status": "deleted"}))
                    .collect::<Vec<_>>()));
            }
            Ok(())
        }
    }
}

async fn list(c: &mut Client, json: bool) -> anyhow::Result<()> {
    let groups = c.list_groups().await?;
    if json {
        print_json(&json!(groups
            .iter()
            .map(|g| json!({"group": g.group_id, "state": g.state, "type": g.group_type, "protocol_type": g.protocol_type}))
            .collect::<Vec<_>>()));
        return Ok(());
    }
    let mut t = Table::new(&["GROUP", "STATE", "TYPE", "PROTOCOL-TYPE"]);
    for g in groups {
        t.row(vec![g.group_id, g.state, g.group_type, g.protocol_type]);
    }
    t.print();
    Ok(())
}

/// How `groups describe` prints a group.
trait Render {
    fn to_json(&self) -> serde_json::Value;
    fn print(&self);
}

impl Render for GroupLag {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "group": self.group.group_id,
            "state": self.group.state,
            "type": self.group.group_type,
            "protocol": self.group.protocol,
            "total_lag": self.total_lag(),
            "members": self.group.members.iter().map(|m| json!({
                "member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id, "host": m.host,
                "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "partitions": self.partitions.iter().map(|p| json!({
                "topic": p.topic, "partition": p.partition, "current_offset": p.current_offset,
                "log_end_offset": p.log_end_offset, "lag": p.lag,
                "member_id": p.member.as_ref().map(|m| &m.member_id),
                "client_id": p.member.as_ref().map(|m| &m.client_id),
                "host": p.member.as_ref().map(|m| &m.host),
            })).collect::<Vec<_>>(),
        })
    }

    fn print(&self) {
        let g = &self.group;
        println!(
            "Group '{}': state {}, {} member(s), protocol {}, total lag {}",
            g.group_id,
            g.state,
            g.members.len(),
            if g.protocol.is_empty() {
                "-"
            } else {
                &g.protocol
            },
            self.total_lag()
        );
        println!();
        let mut t = Table::new(&[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]);
        let dash = || "-".to_string();
        for p in &self.partitions {
            t.row(vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.current_offset.map(|o| o.to_string()).unwrap_or_else(dash),
                p.log_end_offset.to_string(),
                p.lag.map(|o| o.to_string()).unwrap_or_else(dash),
                p.member
                    .as_ref()
                    .map(|m| m.member_id.clone())
                    .unwrap_or_else(dash),
                p.member
                    .as_ref()
                    .map(|m| m.host.clone())
                    .unwrap_or_else(dash),
                p.member
                    .as_ref()
                    .map(|m| m.client_id.clone())
                    .unwrap_or_else(dash),
            ]);
        }
        t.print();
    }
}

async fn reset(
    c: &mut Client,
    group: &str,
    topics: &[String],
    all_topics: bool,
    target: ResetTarget,
    execute: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut selection = Vec::new();
    for spec in topics {
        selection.push(topic_partitions(spec)?);
    }
    let rows = c
        .plan_offset_reset(group, &selection, all_topics, target)
        .await?;
    let plan: Vec<(String, i32, Option<i64>, i64)> = rows
        .into_iter()
        .map(|r| (r.topic, r.partition, r.current_offset, r.new_offset))
        .collect();
    if execute {
        let offsets: Vec<(String, i32, i64)> = plan
            .iter()
            .map(|(t, p, _, n)| (t.clone(), *p, *n))
            .collect();
        c.commit(group, &offsets).await?;
    }
    if json {
        print_json(&json!({
            "group": group,
            "executed": execute,
            "partitions": plan.iter().map(|(t, p, cur, new)| json!({"topic": t, "partition": p, "current_offset": cur, "new_offset": new})).collect::<Vec<_>>(),
        }));
    } else {
        let mut t = Table::new(&[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
        ]);
        for (topic, p, cur, new) in &plan {
            t.row(vec![
                group.to_string(),
                topic.clone(),
                p.to_string(),
                cur.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                new.to_string(),
            ]);
        }
        t.print();
        if !execute {
            eprintln!("dry run: nothing changed; add --execute to apply");
        }
    }
    Ok(())
}
