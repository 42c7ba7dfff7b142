//! Bounds on the work one request may ask for. A frame of a few megabytes can name millions of
//! topics, groups or partitions (an empty group id costs two bytes on the wire and hundreds in a
//! response), so every decoded request is measured by the elements its lists hold, and one
//! naming more than [`MAX_REQUEST_ELEMENTS`] closes its connection before any work is done, as
//! Kafka closes connections on invalid requests. The bytes of requests in hand are bounded
//! separately (`queued.max.request.bytes`, in `connection.rs`).

use kafka_protocol::messages::*;

/// Most list elements (topics, partitions, groups, config keys...) one request may name: well
/// above what any client sends in one request (a fetch of every partition of a 20,000-partition
/// broker), far below what turns a small frame into gigabytes.
pub const MAX_REQUEST_ELEMENTS: usize = 100_000;

/// The number of list elements a request names, nested lists included.
pub trait Elements {
    fn elements(&self) -> usize;
}

fn opt<T>(v: &Option<Vec<T>>) -> usize {
    v.as_ref().map_or(0, Vec::len)
}

fn tasks(t: &Option<Vec<streams_group_heartbeat_request::TaskIds>>) -> usize {
    t.as_ref()
        .map_or(0, |t| t.iter().map(|x| 1 + x.partitions.len()).sum())
}

fn streams_heartbeat_elements(r: &StreamsGroupHeartbeatRequest) -> usize {
    let topic = |t: &streams_group_heartbeat_request::TopicInfo| 1 + t.topic_configs.len();
    let topology = r.topology.as_ref().map_or(0, |t| {
        t.subtopologies
            .iter()
            .map(|s| {
                1 + s.source_topics.len()
                    + s.source_topic_regex.len()
                    + s.repartition_sink_topics.len()
                    + s.state_changelog_topics.iter().map(topic).sum::<usize>()
                    + s.repartition_source_topics.iter().map(topic).sum::<usize>()
                    + s.copartition_groups
                        .iter()
                        .map(|g| {
                            1 + g.source_topics.len()
                                + g.source_topic_regex.len()
                                + g.repartition_source_topics.len()
                        })
                        .sum::<usize>()
            })
            .sum()
    });
    topology
        + tasks(&r.active_tasks)
        + tasks(&r.standby_tasks)
        + tasks(&r.warmup_tasks)
        + opt(&r.client_tags)
        + opt(&r.task_offsets)
        + opt(&r.task_end_offsets)
}

macro_rules! elements {
    ($($t:ty => |$r:ident| $e:expr;)*) => {
        $(impl Elements for $t {
            fn elements(&$r) -> usize {
                $e
            }
        })*
    };
}

elements! {
    ApiVersionsRequest => |self| 0;
    InitProducerIdRequest => |self| 0;
    HeartbeatRequest => |self| 0;
    DescribeClusterRequest => |self| 0;
    MetadataRequest => |self| opt(&self.topics);
    DescribeGroupsRequest => |self| self.groups.len();
    DeleteGroupsRequest => |self| self.groups_names.len();
    ConsumerGroupDescribeRequest => |self| self.group_ids.len();
    FindCoordinatorRequest => |self| self.coordinator_keys.len();
    ListGroupsRequest => |self| self.states_filter.len() + self.types_filter.len();
    JoinGroupRequest => |self| self.protocols.len();
    SyncGroupRequest => |self| self.assignments.len();
    LeaveGroupRequest => |self| self.members.len();
    ConsumerGroupHeartbeatRequest => |self| opt(&self.subscribed_topic_names)
        + self.topic_partitions.as_ref().map_or(0, |t| t.iter().map(|p| 1 + p.partitions.len()).sum());
    StreamsGroupDescribeRequest => |self| self.group_ids.len();
    StreamsGroupHeartbeatRequest => |self| streams_heartbeat_elements(self);
    DescribeConfigsRequest => |self| self.resources.iter().map(|r| 1 + opt(&r.configuration_keys)).sum();
    AlterConfigsRequest => |self| self.resources.iter().map(|r| 1 + r.configs.len()).sum();
    IncrementalAlterConfigsRequest => |self| self.resources.iter().map(|r| 1 + r.configs.len()).sum();
    CreateTopicsRequest => |self| self.topics.iter().map(|t| 1 + t.configs.len() + t.assignments.len()).sum();
    DeleteTopicsRequest => |self| self.topics.len() + self.topic_names.len();
    CreatePartitionsRequest => |self| self.topics.iter().map(|t| 1 + opt(&t.assignments)).sum();
    ProduceRequest => |self| self.topic_data.iter().map(|t| 1 + t.partition_data.len()).sum();
    FetchRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.len()).sum::<usize>()
        + self.forgotten_topics_data.iter().map(|t| 1 + t.partitions.len()).sum::<usize>();
    ListOffsetsRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.len()).sum();
    OffsetForLeaderEpochRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.len()).sum();
    DeleteRecordsRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.len()).sum();
    OffsetCommitRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.len()).sum();
    OffsetDeleteRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.len()).sum();
    OffsetFetchRequest => |self| self.topics.as_ref().map_or(0, |t| t.iter().map(|t| 1 + t.partition_indexes.len()).sum::<usize>())
        + self.groups.iter().map(|g| 1 + g.topics.as_ref().map_or(0, |t| t.iter().map(|t| 1 + t.partition_indexes.len()).sum::<usize>())).sum::<usize>();
    DescribeTopicPartitionsRequest => |self| self.topics.len();
    DescribeLogDirsRequest => |self| self.topics.as_ref().map_or(0, |t| t.iter().map(|t| 1 + t.partitions.len()).sum());
    AlterReplicaLogDirsRequest => |self| self.dirs.iter().map(|d| 1 + d.topics.iter().map(|t| 1 + t.partitions.len()).sum::<usize>()).sum();
    ElectLeadersRequest => |self| self.topic_partitions.as_ref().map_or(0, |t| t.iter().map(|t| 1 + t.partitions.len()).sum());
    ListPartitionReassignmentsRequest => |self| self.topics.as_ref().map_or(0, |t| t.iter().map(|t| 1 + t.partition_indexes.len()).sum());
    AlterPartitionReassignmentsRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.iter().map(|p| 1 + opt(&p.replicas)).sum::<usize>()).sum();
    DescribeQuorumRequest => |self| self.topics.iter().map(|t| 1 + t.partitions.len()).sum();
    DescribeProducersRequest => |self| self.topics.iter().map(|t| 1 + t.partition_indexes.len()).sum();
    ListConfigResourcesRequest => |self| self.resource_types.len();
}
