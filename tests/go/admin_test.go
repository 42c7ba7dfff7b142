package franz

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The answers asserted here are those of a single-node Apache Kafka 4.x in KRaft combined mode
// (node id 1). Where Vltava lacks an API today, the test skips with "broker gap: ..." only on
// that exact condition (the key is absent from ApiVersions and franz-go refused to send the
// request); once the broker advertises the API the same test runs and must pass.

// apiGap skips t when err is franz-go refusing a request whose API key the broker does not
// advertise. Any other error is returned to the caller to fail on.
func apiGap(t *testing.T, v kadm.BrokerApiVersions, key kmsg.Key, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if _, _, ok := v.KeyVersions(key.Int16()); !ok && strings.Contains(err.Error(), "broker is too old") {
		t.Skipf("broker gap: %s (API key %d) is not in ApiVersions; franz-go: %v", key.Name(), key.Int16(), err)
	}
}

func str(s string) *string { return &s }

func configMap(cs []kadm.Config) map[string]kadm.Config {
	m := map[string]kadm.Config{}
	for _, c := range cs {
		m[c.Key] = c
	}
	return m
}

func val(c kadm.Config) string {
	if c.Value == nil {
		return "<nil>"
	}
	return *c.Value
}

// wantConfig checks one config's value and source.
func wantConfig(t *testing.T, cs map[string]kadm.Config, key, value string, source kmsg.ConfigSource) {
	t.Helper()
	c, ok := cs[key]
	if !ok {
		t.Errorf("config %s missing", key)
		return
	}
	if val(c) != value || c.Source != source {
		t.Errorf("config %s = %q (%v), want %q (%v)", key, val(c), c.Source, value, source)
	}
}

// createResult is kadm's CreateTopic result; only a failure of the request itself fails the test
// (CreateTopic also returns the topic's error as its error).
func createResult(t *testing.T, adm *kadm.Client, partitions int32, rf int16, configs map[string]*string, topic string) kadm.CreateTopicResponse {
	t.Helper()
	r, err := adm.CreateTopic(ctxT(t, 30*time.Second), partitions, rf, configs, topic)
	if err != nil && r.Err == nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
	return r
}

func TestAdmin(t *testing.T) {
	b := StartBroker(t)
	cl := b.Client(t, kgo.MetadataMinAge(100*time.Millisecond))
	adm := kadm.NewClient(cl)
	ctx := func() context.Context { return ctxT(t, 30*time.Second) }

	vs, err := adm.ApiVersions(ctx())
	must(t, err, "ApiVersions")
	v, ok := vs[1]
	if !ok || v.Err != nil {
		t.Fatalf("ApiVersions: node 1 missing or failed: %+v", vs)
	}

	t.Run("ApiVersions", func(t *testing.T) {
		if len(vs) != 1 {
			t.Errorf("ApiVersions answered by %d brokers, want 1", len(vs))
		}
		// Every API a franz-go producer, consumer, group member and admin uses here.
		for _, k := range []kmsg.Key{kmsg.Produce, kmsg.Fetch, kmsg.ListOffsets, kmsg.Metadata, kmsg.OffsetCommit,
			kmsg.OffsetFetch, kmsg.FindCoordinator, kmsg.JoinGroup, kmsg.Heartbeat, kmsg.LeaveGroup, kmsg.SyncGroup,
			kmsg.DescribeGroups, kmsg.ListGroups, kmsg.ApiVersions, kmsg.CreateTopics, kmsg.DeleteTopics,
			kmsg.DeleteRecords, kmsg.InitProducerID, kmsg.OffsetForLeaderEpoch, kmsg.DescribeConfigs,
			kmsg.AlterConfigs, kmsg.CreatePartitions, kmsg.DeleteGroups, kmsg.IncrementalAlterConfigs,
			kmsg.OffsetDelete, kmsg.DescribeCluster, kmsg.ConsumerGroupHeartbeat, kmsg.ConsumerGroupDescribe} {
			min, max, ok := v.KeyVersions(k.Int16())
			if !ok || min > max {
				t.Errorf("ApiVersions: %s (%d) not advertised (%d..%d)", k.Name(), k.Int16(), min, max)
			}
		}
		if _, max, _ := v.KeyVersions(kmsg.ApiVersions.Int16()); max < 3 {
			t.Errorf("ApiVersions max version %d, want >= 3 (Kafka 4: 4)", max)
		}
		t.Logf("franz-go's guess of the broker's Kafka version: %s", v.VersionGuess())
	})

	t.Run("ApiVersionsFeatures", func(t *testing.T) {
		// Kafka 4 (KRaft) lists its supported and finalized features: metadata.version,
		// kraft.version, group.version, transaction.version, ...
		raw := v.Raw()
		if len(raw.SupportedFeatures) == 0 && len(raw.FinalizedFeatures) == 0 && raw.FinalizedFeaturesEpoch == -1 {
			t.Skip("broker gap: ApiVersions v" + fmt.Sprint(raw.Version) + " has no SupportedFeatures/FinalizedFeatures " +
				"(FinalizedFeaturesEpoch -1); Kafka lists metadata.version, kraft.version, group.version, ...")
		}
		sup := map[string]kmsg.ApiVersionsResponseSupportedFeature{}
		for _, f := range raw.SupportedFeatures {
			sup[f.Name] = f
		}
		fin := map[string]kmsg.ApiVersionsResponseFinalizedFeature{}
		for _, f := range raw.FinalizedFeatures {
			fin[f.Name] = f
		}
		s, ok1 := sup["metadata.version"]
		f, ok2 := fin["metadata.version"]
		if !ok1 || !ok2 {
			t.Fatalf("metadata.version: supported %v finalized %v, want both", ok1, ok2)
		}
		if f.MaxVersionLevel < s.MinVersion || f.MaxVersionLevel > s.MaxVersion || f.MinVersionLevel != f.MaxVersionLevel {
			t.Errorf("metadata.version finalized %d..%d outside supported %d..%d", f.MinVersionLevel, f.MaxVersionLevel, s.MinVersion, s.MaxVersion)
		}
		if raw.FinalizedFeaturesEpoch < 0 {
			t.Errorf("FinalizedFeaturesEpoch = %d, want >= 0", raw.FinalizedFeaturesEpoch)
		}
	})

	t.Run("MetadataAndDescribeCluster", func(t *testing.T) {
		md, err := adm.BrokerMetadata(ctx())
		must(t, err, "BrokerMetadata")
		if md.Controller != 1 || md.Cluster == "" {
			t.Errorf("BrokerMetadata: controller %d cluster %q, want 1 and an id", md.Controller, md.Cluster)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].NodeID != 1 || md.Brokers[0].Host != "127.0.0.1" || md.Brokers[0].Port != int32(b.Port) {
			t.Errorf("BrokerMetadata brokers %+v, want node 1 at %s", md.Brokers, b.Addr())
		}
		brokers, err := adm.ListBrokers(ctx())
		must(t, err, "ListBrokers")
		if got := brokers.NodeIDs(); !slices.Equal(got, []int32{1}) {
			t.Errorf("ListBrokers = %v, want [1]", got)
		}

		req := kmsg.NewPtrDescribeClusterRequest()
		resp, err := req.RequestWith(ctx(), cl)
		must(t, err, "DescribeCluster")
		must(t, kerr.ErrorForCode(resp.ErrorCode), "DescribeCluster error code")
		if resp.ClusterID != md.Cluster || resp.ControllerID != 1 {
			t.Errorf("DescribeCluster cluster %q controller %d, want %q and 1", resp.ClusterID, resp.ControllerID, md.Cluster)
		}
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 || resp.Brokers[0].Host != "127.0.0.1" || resp.Brokers[0].Port != int32(b.Port) {
			t.Errorf("DescribeCluster brokers %+v, want node 1 at %s", resp.Brokers, b.Addr())
		}

		fc := adm.FindGroupCoordinators(ctx(), "any-group")
		c := fc["any-group"]
		if c.Err != nil || c.NodeID != 1 || c.Host != "127.0.0.1" || c.Port != int32(b.Port) {
			t.Errorf("FindGroupCoordinators = %+v, want node 1 at %s", c, b.Addr())
		}
	})

	t.Run("CreateTopics", func(t *testing.T) {
		const topic = "adm-create"
		configs := map[string]*string{"retention.ms": str("3600000"), "cleanup.policy": str("compact")}
		resp, err := adm.CreateTopic(ctx(), 3, 1, configs, topic)
		must(t, err, "CreateTopic")
		must(t, resp.Err, "CreateTopic result")
		if resp.NumPartitions != 3 || resp.ReplicationFactor != 1 || resp.ID == (kadm.TopicID{}) {
			t.Errorf("CreateTopic: partitions %d rf %d id %v, want 3, 1 and an id", resp.NumPartitions, resp.ReplicationFactor, resp.ID)
		}
		wantConfig(t, resp.Configs, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(t, resp.Configs, "cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(t, resp.Configs, "segment.bytes", "1073741824", kmsg.ConfigSourceDefaultConfig)

		dup := createResult(t, adm, 3, 1, nil, topic)
		if !errors.Is(dup.Err, kerr.TopicAlreadyExists) {
			t.Errorf("duplicate CreateTopic: %v, want TOPIC_ALREADY_EXISTS", dup.Err)
		}
		// Kafka's text (ReplicationControlManager.createTopics).
		if want := "Topic '" + topic + "' already exists."; dup.ErrMessage != want {
			t.Errorf("duplicate CreateTopic message %q, want %q", dup.ErrMessage, want)
		}

		// -1 partitions and replication factor: the broker's num.partitions and default factor.
		def := createResult(t, adm, -1, -1, nil, "adm-default")
		if def.Err != nil || def.NumPartitions != 1 || def.ReplicationFactor != 1 {
			t.Errorf("CreateTopic with defaults: %v partitions %d rf %d, want 1 and 1", def.Err, def.NumPartitions, def.ReplicationFactor)
		}

		bad := []struct {
			name       string
			partitions int32
			rf         int16
			configs    map[string]*string
			want       error
		}{
			{"adm-bad-config", 1, 1, map[string]*string{"no.such.config": str("1")}, kerr.InvalidConfig},
			{"adm-bad-value", 1, 1, map[string]*string{"retention.ms": str("soon")}, kerr.InvalidConfig},
			{"adm/bad name", 1, 1, nil, kerr.InvalidTopicException},
			{"adm-zero-partitions", 0, 1, nil, kerr.InvalidPartitions},
			{"adm-rf3", 1, 3, nil, kerr.InvalidReplicationFactor},
		}
		for _, c := range bad {
			r := createResult(t, adm, c.partitions, c.rf, c.configs, c.name)
			if !errors.Is(r.Err, c.want) {
				t.Errorf("CreateTopic %q: %v (%s), want %v", c.name, r.Err, r.ErrMessage, c.want)
			}
		}

		vr, err := adm.ValidateCreateTopics(ctx(), 2, 1, nil, "adm-validate-only")
		must(t, err, "ValidateCreateTopics")
		must(t, vr["adm-validate-only"].Err, "ValidateCreateTopics result")

		// kadm's metadata is cached for MetadataMinAge: wait for a listing with the new topics.
		var topics kadm.TopicDetails
		waitFor(t, 10*time.Second, "ListTopics to list "+topic+" and adm-default", func() bool {
			topics, err = adm.ListTopics(ctx())
			return err == nil && topics.Has(topic) && topics.Has("adm-default")
		})
		for _, name := range []string{"adm-validate-only", "adm-bad-config", "adm-zero-partitions", "adm-rf3"} {
			if topics.Has(name) {
				t.Errorf("ListTopics has %s, which was not to be created", name)
			}
		}
		for _, d := range topics {
			if d.IsInternal {
				t.Errorf("ListTopics lists internal topic %s", d.Topic)
			}
		}

		md, err := adm.Metadata(ctx(), topic)
		must(t, err, "Metadata")
		td := md.Topics[topic]
		must(t, td.Err, "Metadata topic")
		if td.ID != resp.ID || len(td.Partitions) != 3 || td.IsInternal {
			t.Errorf("Metadata %s: id %v (created %v), %d partitions, internal %v", topic, td.ID, resp.ID, len(td.Partitions), td.IsInternal)
		}
		for p, pd := range td.Partitions {
			if pd.Err != nil || pd.Leader != 1 || pd.LeaderEpoch < 0 || !slices.Equal(pd.Replicas, []int32{1}) || !slices.Equal(pd.ISR, []int32{1}) || len(pd.OfflineReplicas) != 0 {
				t.Errorf("Metadata %s/%d: %+v, want leader 1, replicas and ISR [1]", topic, p, pd)
			}
		}
		missing, err := adm.Metadata(ctx(), "adm-missing")
		must(t, err, "Metadata of a missing topic")
		if !errors.Is(missing.Topics["adm-missing"].Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("Metadata of a missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", missing.Topics["adm-missing"].Err)
		}
	})

	t.Run("CreatePartitions", func(t *testing.T) {
		const topic = "adm-partitions"
		createTopic(t, adm, topic, 2, nil)
		r, err := adm.CreatePartitions(ctx(), 3, topic)
		must(t, err, "CreatePartitions")
		must(t, r[topic].Err, "CreatePartitions result")
		waitFor(t, 10*time.Second, "5 partitions in metadata", func() bool {
			md, err := adm.Metadata(ctx(), topic)
			return err == nil && len(md.Topics[topic].Partitions) == 5
		})
		// Validate-only changes nothing; fewer partitions and unknown topics are refused.
		vr, err := adm.ValidateCreatePartitions(ctx(), 1, topic)
		must(t, err, "ValidateCreatePartitions")
		must(t, vr[topic].Err, "ValidateCreatePartitions result")
		down, err := adm.UpdatePartitions(ctx(), 3, topic)
		must(t, err, "UpdatePartitions")
		if !errors.Is(down[topic].Err, kerr.InvalidPartitions) {
			t.Errorf("UpdatePartitions to fewer: %v, want INVALID_PARTITIONS", down[topic].Err)
		}
		same, err := adm.UpdatePartitions(ctx(), 5, topic)
		must(t, err, "UpdatePartitions to the same count")
		if !errors.Is(same[topic].Err, kerr.InvalidPartitions) {
			t.Errorf("UpdatePartitions to the same count: %v, want INVALID_PARTITIONS", same[topic].Err)
		}
		unk, err := adm.CreatePartitions(ctx(), 1, "adm-missing")
		must(t, err, "CreatePartitions of a missing topic")
		if !errors.Is(unk["adm-missing"].Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("CreatePartitions of a missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", unk["adm-missing"].Err)
		}
		md, err := adm.Metadata(ctx(), topic)
		must(t, err, "Metadata")
		if n := len(md.Topics[topic].Partitions); n != 5 {
			t.Errorf("%s has %d partitions, want 5", topic, n)
		}
	})

	t.Run("DeleteTopics", func(t *testing.T) {
		createTopic(t, adm, "adm-delete-1", 2, nil)
		createTopic(t, adm, "adm-delete-2", 1, nil)
		r, err := adm.DeleteTopics(ctx(), "adm-delete-1", "adm-delete-2", "adm-missing")
		must(t, err, "DeleteTopics")
		must(t, r["adm-delete-1"].Err, "DeleteTopics adm-delete-1")
		must(t, r["adm-delete-2"].Err, "DeleteTopics adm-delete-2")
		if !errors.Is(r["adm-missing"].Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("DeleteTopics of a missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", r["adm-missing"].Err)
		}
		waitFor(t, 10*time.Second, "the topics gone from ListTopics", func() bool {
			ts, err := adm.ListTopics(ctx())
			return err == nil && !ts.Has("adm-delete-1") && !ts.Has("adm-delete-2")
		})
		// The name can be used again: a new topic with a new id.
		createTopic(t, adm, "adm-delete-1", 1, nil)
	})

	t.Run("TopicConfigs", func(t *testing.T) {
		const topic = "adm-configs"
		createTopic(t, adm, topic, 1, map[string]*string{"retention.ms": str("3600000")})
		describe := func() map[string]kadm.Config {
			t.Helper()
			rcs, err := adm.DescribeTopicConfigs(ctx(), topic)
			must(t, err, "DescribeTopicConfigs")
			rc, err := rcs.On(topic, nil)
			must(t, err, "DescribeTopicConfigs result")
			must(t, rc.Err, "DescribeTopicConfigs topic")
			return configMap(rc.Configs)
		}
		cs := describe()
		wantConfig(t, cs, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(t, cs, "cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
		wantConfig(t, cs, "segment.bytes", "1073741824", kmsg.ConfigSourceDefaultConfig)
		wantConfig(t, cs, "compression.type", "producer", kmsg.ConfigSourceDefaultConfig)
		wantConfig(t, cs, "min.insync.replicas", "1", kmsg.ConfigSourceDefaultConfig)

		alter := []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: str("7200000")},
			{Op: kadm.SetConfig, Name: "max.message.bytes", Value: str("2097152")},
			{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: str("compact")},
		}
		ar, err := adm.AlterTopicConfigs(ctx(), alter, topic)
		must(t, err, "AlterTopicConfigs")
		must(t, ar[0].Err, "AlterTopicConfigs result")
		cs = describe()
		wantConfig(t, cs, "retention.ms", "7200000", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(t, cs, "max.message.bytes", "2097152", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(t, cs, "cleanup.policy", "delete,compact", kmsg.ConfigSourceDynamicTopicConfig)

		alter = []kadm.AlterConfig{
			{Op: kadm.DeleteConfig, Name: "retention.ms"},
			{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: str("delete")},
		}
		ar, err = adm.AlterTopicConfigs(ctx(), alter, topic)
		must(t, err, "AlterTopicConfigs delete/subtract")
		must(t, ar[0].Err, "AlterTopicConfigs delete/subtract result")
		cs = describe()
		wantConfig(t, cs, "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
		wantConfig(t, cs, "cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(t, cs, "max.message.bytes", "2097152", kmsg.ConfigSourceDynamicTopicConfig)

		// Validate-only changes nothing.
		vr, err := adm.ValidateAlterTopicConfigs(ctx(), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: str("1000")}}, topic)
		must(t, err, "ValidateAlterTopicConfigs")
		must(t, vr[0].Err, "ValidateAlterTopicConfigs result")
		wantConfig(t, describe(), "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)

		// Errors: an unknown config name, a bad value, an unknown topic.
		for _, c := range []struct {
			what  string
			topic string
			cfg   kadm.AlterConfig
			want  error
		}{
			{"unknown name", topic, kadm.AlterConfig{Op: kadm.SetConfig, Name: "no.such.config", Value: str("1")}, kerr.InvalidConfig},
			{"bad value", topic, kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: str("soon")}, kerr.InvalidConfig},
			{"unknown topic", "adm-missing", kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: str("1")}, kerr.UnknownTopicOrPartition},
		} {
			r, err := adm.AlterTopicConfigs(ctx(), []kadm.AlterConfig{c.cfg}, c.topic)
			must(t, err, "AlterTopicConfigs "+c.what)
			if len(r) != 1 || !errors.Is(r[0].Err, c.want) {
				t.Errorf("AlterTopicConfigs %s: %+v, want %v", c.what, r, c.want)
			}
		}
		rcs, err := adm.DescribeTopicConfigs(ctx(), "adm-missing")
		must(t, err, "DescribeTopicConfigs of a missing topic")
		if len(rcs) != 1 || !errors.Is(rcs[0].Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("DescribeTopicConfigs of a missing topic: %+v, want UNKNOWN_TOPIC_OR_PARTITION", rcs)
		}

		// Non-incremental AlterConfigs replaces the whole set: what is not named goes back to default.
		sr, err := adm.AlterTopicConfigsState(ctx(), []kadm.AlterConfig{{Name: "retention.ms", Value: str("5000000")}}, topic)
		must(t, err, "AlterTopicConfigsState")
		must(t, sr[0].Err, "AlterTopicConfigsState result")
		cs = describe()
		wantConfig(t, cs, "retention.ms", "5000000", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(t, cs, "cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
		wantConfig(t, cs, "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)
	})

	t.Run("BrokerConfigs", func(t *testing.T) {
		rcs, err := adm.DescribeBrokerConfigs(ctx(), 1)
		must(t, err, "DescribeBrokerConfigs")
		rc, err := rcs.On("1", nil)
		must(t, err, "DescribeBrokerConfigs result")
		must(t, rc.Err, "DescribeBrokerConfigs broker 1")
		cs := configMap(rc.Configs)
		for _, k := range []string{"node.id", "num.partitions", "log.segment.bytes", "log.retention.ms", "auto.create.topics.enable", "message.max.bytes", "default.replication.factor"} {
			if _, ok := cs[k]; !ok {
				t.Errorf("broker config %s missing", k)
			}
		}
		t.Run("LogRetentionHours", func(t *testing.T) {
			c, ok := cs["log.retention.hours"]
			if !ok {
				t.Skip("broker gap: DescribeConfigs of BROKER 1 has no log.retention.hours (Kafka: \"168\")")
			}
			if val(c) != "168" {
				t.Errorf("log.retention.hours = %q, want 168", val(c))
			}
		})
		if c := cs["num.partitions"]; val(c) != "1" {
			t.Errorf("num.partitions = %q, want 1", val(c))
		}
		if c := cs["log.segment.bytes"]; val(c) != "1073741824" {
			t.Errorf("log.segment.bytes = %q, want 1073741824", val(c))
		}
		if c, ok := cs["node.id"]; ok && val(c) != "1" {
			t.Errorf("node.id = %q, want 1", val(c))
		}
		// The cluster-wide default resource (the empty name) describes without error.
		all, err := adm.DescribeBrokerConfigs(ctx())
		must(t, err, "DescribeBrokerConfigs (cluster default)")
		for _, rc := range all {
			must(t, rc.Err, "DescribeBrokerConfigs "+rc.Name)
		}
		// An unknown broker id is refused.
		_, err = adm.DescribeBrokerConfigs(ctx(), 7)
		if err == nil {
			t.Errorf("DescribeBrokerConfigs of broker 7 succeeded, want an error")
		}
	})

	t.Run("ListOffsetsAndDeleteRecords", func(t *testing.T) {
		const topic = "adm-offsets"
		createTopic(t, adm, topic, 2, nil)
		base := time.Now().Add(-time.Hour).Truncate(time.Second)
		var recs []*kgo.Record
		for i := 0; i < 10; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
		}
		pcl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		must(t, pcl.ProduceSync(ctx(), recs...).FirstErr(), "ProduceSync")

		check := func(what string, lo kadm.ListedOffsets, p int32, offset, ts int64) {
			t.Helper()
			o, ok := lo.Lookup(topic, p)
			if !ok || o.Err != nil || o.Offset != offset || (ts != -2 && o.Timestamp != ts) {
				t.Errorf("%s %s/%d = %+v, want offset %d timestamp %d", what, topic, p, o, offset, ts)
			}
		}
		start, err := adm.ListStartOffsets(ctx(), topic)
		must(t, err, "ListStartOffsets")
		check("ListStartOffsets", start, 0, 0, -2)
		check("ListStartOffsets", start, 1, 0, -2)
		end, err := adm.ListEndOffsets(ctx(), topic)
		must(t, err, "ListEndOffsets")
		check("ListEndOffsets", end, 0, 10, -2)
		check("ListEndOffsets", end, 1, 0, -2)

		after, err := adm.ListOffsetsAfterMilli(ctx(), base.Add(3500*time.Millisecond).UnixMilli(), topic)
		must(t, err, "ListOffsetsAfterMilli")
		check("ListOffsetsAfterMilli", after, 0, 4, base.Add(4*time.Second).UnixMilli())
		exact, err := adm.ListOffsetsAfterMilli(ctx(), base.Add(2*time.Second).UnixMilli(), topic)
		must(t, err, "ListOffsetsAfterMilli exact")
		check("ListOffsetsAfterMilli exact", exact, 0, 2, base.Add(2*time.Second).UnixMilli())
		// After every record: Kafka answers offset -1, which kadm turns into the end offset.
		late, err := adm.ListOffsetsAfterMilli(ctx(), time.Now().Add(time.Hour).UnixMilli(), topic)
		must(t, err, "ListOffsetsAfterMilli after all")
		check("ListOffsetsAfterMilli after all", late, 0, 10, -2)
		check("ListOffsetsAfterMilli after all", late, 1, 0, -2)
		maxTS, err := adm.ListMaxTimestampOffsets(ctx(), topic)
		must(t, err, "ListMaxTimestampOffsets")
		check("ListMaxTimestampOffsets", maxTS, 0, 9, base.Add(9*time.Second).UnixMilli())

		// DeleteRecords moves the log start offset; past the high watermark is out of range.
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4})
		dr, err := adm.DeleteRecords(ctx(), os)
		must(t, err, "DeleteRecords")
		r, ok := dr.Lookup(topic, 0)
		if !ok || r.Err != nil || r.LowWatermark != 4 {
			t.Errorf("DeleteRecords = %+v, want low watermark 4", r)
		}
		start, err = adm.ListStartOffsets(ctx(), topic)
		must(t, err, "ListStartOffsets after DeleteRecords")
		check("ListStartOffsets after DeleteRecords", start, 0, 4, -2)
		early, err := adm.ListOffsetsAfterMilli(ctx(), base.UnixMilli(), topic)
		must(t, err, "ListOffsetsAfterMilli before the start")
		check("ListOffsetsAfterMilli before the start", early, 0, 4, base.Add(4*time.Second).UnixMilli())

		// -1 is "the high watermark".
		var all kadm.Offsets
		all.Add(kadm.Offset{Topic: topic, Partition: 0, At: -1})
		dr, err = adm.DeleteRecords(ctx(), all)
		must(t, err, "DeleteRecords to the high watermark")
		if r, _ := dr.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 10 {
			t.Errorf("DeleteRecords(-1) = %+v, want low watermark 10", r)
		}
		var past kadm.Offsets
		past.Add(kadm.Offset{Topic: topic, Partition: 1, At: 5})
		dr, err = adm.DeleteRecords(ctx(), past)
		must(t, err, "DeleteRecords past the end")
		if r, _ := dr.Lookup(topic, 1); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
			t.Errorf("DeleteRecords past the end = %+v, want OFFSET_OUT_OF_RANGE", r)
		}

		// Offsets of a missing topic: kadm reports the topic with UNKNOWN_TOPIC_OR_PARTITION.
		miss, err := adm.ListEndOffsets(ctx(), "adm-missing")
		must(t, err, "ListEndOffsets of a missing topic")
		if o, ok := miss.Lookup("adm-missing", -1); !ok || !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("ListEndOffsets of a missing topic: %+v, want UNKNOWN_TOPIC_OR_PARTITION", miss)
		}

		// OffsetForLeaderEpoch of the current epoch ends at the high watermark.
		md, err := adm.Metadata(ctx(), topic)
		must(t, err, "Metadata")
		epoch := md.Topics[topic].Partitions[0].LeaderEpoch
		var req kadm.OffsetForLeaderEpochRequest
		req.Add(topic, 0, epoch)
		ofe, err := adm.OffsetForLeaderEpoch(ctx(), req)
		must(t, err, "OffsetForLeaderEpoch")
		if o := ofe[topic][0]; o.Err != nil || o.EndOffset != 10 || o.LeaderEpoch != epoch {
			t.Errorf("OffsetForLeaderEpoch = %+v, want end offset 10 epoch %d", o, epoch)
		}
	})

	t.Run("Groups", func(t *testing.T) {
		const topic, group = "adm-groups", "adm-group"
		createTopic(t, adm, topic, 3, nil)
		pcl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for p := int32(0); p < 3; p++ {
			for i := 0; i < 10; i++ {
				must(t, pcl.ProduceSync(ctx(), &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}).FirstErr(), "produce")
			}
		}

		// Offsets committed by an admin (generation -1) create an Empty classic group.
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3, LeaderEpoch: -1, Metadata: "m0"})
		os.Add(kadm.Offset{Topic: topic, Partition: 1, At: 5, LeaderEpoch: -1})
		os.Add(kadm.Offset{Topic: topic, Partition: 2, At: 10, LeaderEpoch: -1})
		cr, err := adm.CommitOffsets(ctx(), group, os)
		must(t, err, "CommitOffsets")
		must(t, cr.Error(), "CommitOffsets result")

		fo, err := adm.FetchOffsets(ctx(), group)
		must(t, err, "FetchOffsets")
		must(t, fo.Error(), "FetchOffsets result")
		for p, want := range map[int32]int64{0: 3, 1: 5, 2: 10} {
			o, ok := fo.Lookup(topic, p)
			if !ok || o.At != want {
				t.Errorf("FetchOffsets %s/%d = %+v, want %d", topic, p, o, want)
			}
		}
		if o, _ := fo.Lookup(topic, 0); o.Metadata != "m0" {
			t.Errorf("FetchOffsets metadata %q, want m0", o.Metadata)
		}

		ls, err := adm.ListGroups(ctx())
		must(t, err, "ListGroups")
		lg, ok := ls[group]
		if !ok || lg.State != "Empty" || lg.Coordinator != 1 || lg.GroupType != "classic" {
			t.Errorf("ListGroups %s = %+v, want Empty classic group on node 1", group, lg)
		}
		filtered, err := adm.ListGroups(ctx(), "Stable")
		must(t, err, "ListGroups Stable")
		if _, ok := filtered[group]; ok {
			t.Errorf("ListGroups(Stable) lists the Empty group %s", group)
		}

		dg, err := adm.DescribeGroups(ctx(), group)
		must(t, err, "DescribeGroups")
		if d := dg[group]; d.Err != nil || d.State != "Empty" || len(d.Members) != 0 || d.Coordinator.NodeID != 1 {
			t.Errorf("DescribeGroups %s = %+v, want Empty, no members, coordinator 1", group, d)
		}
		unknown, err := adm.DescribeGroups(ctx(), "adm-no-such-group")
		must(t, err, "DescribeGroups of an unknown group")
		// DescribeGroups v6 (KIP-1043): GROUP_ID_NOT_FOUND, state Dead.
		if d := unknown["adm-no-such-group"]; !errors.Is(d.Err, kerr.GroupIDNotFound) || d.State != "Dead" {
			t.Errorf("DescribeGroups of an unknown group = %v state %q, want GROUP_ID_NOT_FOUND and Dead", d.Err, d.State)
		}

		// Lag: end offsets are 10 everywhere.
		lags, err := adm.Lag(ctx(), group)
		must(t, err, "Lag")
		l := lags[group]
		must(t, l.Error(), "Lag result")
		for p, want := range map[int32]int64{0: 7, 1: 5, 2: 0} {
			if ml, ok := l.Lag.Lookup(topic, p); !ok || ml.Lag != want || ml.Err != nil {
				t.Errorf("Lag %s/%d = %+v, want %d", topic, p, ml, want)
			}
		}
		if tot := l.Lag.Total(); tot != 12 {
			t.Errorf("total lag %d, want 12", tot)
		}
		ends, err := adm.ListEndOffsets(ctx(), topic)
		must(t, err, "ListEndOffsets")
		calc := kadm.CalculateGroupLag(dg[group], fo, ends)
		if tot := calc.Total(); tot != 12 {
			t.Errorf("CalculateGroupLag total %d, want 12", tot)
		}

		// A live member: DeleteGroups is NON_EMPTY_GROUP and DeleteOffsets of its topic
		// GROUP_SUBSCRIBED_TO_TOPIC.
		m := b.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.HeartbeatInterval(300*time.Millisecond))
		waitFor(t, 30*time.Second, "the member to join", func() bool {
			pctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			m.PollRecords(pctx, 1)
			cancel()
			d, err := adm.DescribeGroups(ctx(), group)
			return err == nil && d[group].State == "Stable" && len(d[group].Members) == 1
		})
		del, err := adm.DeleteGroup(ctx(), group)
		if err == nil {
			err = del.Err
		}
		if !errors.Is(err, kerr.NonEmptyGroup) {
			t.Errorf("DeleteGroup of a live group: %v, want NON_EMPTY_GROUP", err)
		}
		var ts kadm.TopicsSet
		ts.Add(topic, 0)
		dor, err := adm.DeleteOffsets(ctx(), group, ts)
		must(t, err, "DeleteOffsets of a live group")
		if e, _ := dor.Lookup(topic, 0); !errors.Is(e, kerr.GroupSubscribedToTopic) {
			t.Errorf("DeleteOffsets of a subscribed topic: %v, want GROUP_SUBSCRIBED_TO_TOPIC", e)
		}
		m.Close()
		waitFor(t, 30*time.Second, "the group to be Empty again", func() bool {
			d, err := adm.DescribeGroups(ctx(), group)
			return err == nil && d[group].State == "Empty"
		})

		// Empty again: DeleteOffsets works.
		dor, err = adm.DeleteOffsets(ctx(), group, ts)
		must(t, err, "DeleteOffsets")
		if e, ok := dor.Lookup(topic, 0); !ok || e != nil {
			t.Errorf("DeleteOffsets %s/0: %v (present %v), want success", topic, e, ok)
		}
		fo, err = adm.FetchOffsets(ctx(), group)
		must(t, err, "FetchOffsets after DeleteOffsets")
		if o, ok := fo.Lookup(topic, 0); ok && o.At >= 0 {
			t.Errorf("FetchOffsets after DeleteOffsets still has %s/0 at %d", topic, o.At)
		}
		if o, ok := fo.Lookup(topic, 1); !ok || o.At != 5 {
			t.Errorf("FetchOffsets after DeleteOffsets %s/1 = %+v, want 5", topic, o)
		}

		// DeleteGroups: gone afterwards; an unknown group is GROUP_ID_NOT_FOUND.
		dr, err := adm.DeleteGroups(ctx(), group, "adm-no-such-group")
		must(t, err, "DeleteGroups")
		must(t, dr[group].Err, "DeleteGroups "+group)
		if !errors.Is(dr["adm-no-such-group"].Err, kerr.GroupIDNotFound) {
			t.Errorf("DeleteGroups of an unknown group: %v, want GROUP_ID_NOT_FOUND", dr["adm-no-such-group"].Err)
		}
		ls, err = adm.ListGroups(ctx())
		must(t, err, "ListGroups after DeleteGroups")
		if _, ok := ls[group]; ok {
			t.Errorf("ListGroups still lists %s after DeleteGroups", group)
		}
		fo, err = adm.FetchOffsets(ctx(), group)
		must(t, err, "FetchOffsets after DeleteGroups")
		if n := len(fo); n != 0 {
			t.Errorf("FetchOffsets after DeleteGroups: %v, want none", fo)
		}
	})

	t.Run("DescribeLogDirs", func(t *testing.T) {
		const topic = "adm-logdirs"
		createTopic(t, adm, topic, 2, nil)
		pcl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		must(t, pcl.ProduceSync(ctx(), &kgo.Record{Topic: topic, Partition: 0, Value: []byte("hello")}).FirstErr(), "produce")
		var ts kadm.TopicsSet
		ts.Add(topic, 0, 1)
		all, err := adm.DescribeAllLogDirs(ctx(), ts)
		apiGap(t, v, kmsg.DescribeLogDirs, err)
		must(t, err, "DescribeAllLogDirs")
		dirs := all[1]
		if len(all) != 1 || len(dirs) != 1 {
			t.Fatalf("DescribeAllLogDirs = %+v, want one directory on broker 1", all)
		}
		for name, d := range dirs {
			must(t, d.Err, "log dir "+name)
			if !filepath.IsAbs(name) || d.Broker != 1 {
				t.Errorf("log dir %q on broker %d, want an absolute path on 1", name, d.Broker)
			}
			p0, ok0 := dirs.Lookup(name, topic, 0)
			p1, ok1 := dirs.Lookup(name, topic, 1)
			if !ok0 || !ok1 || p0.Size <= 0 || p1.Size != 0 || p0.OffsetLag != 0 || p0.IsFuture {
				t.Errorf("log dir partitions: %+v %+v, want both, p0 with bytes, p1 empty", p0, p1)
			}
			if d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
				t.Errorf("log dir total %d usable %d bytes, want 0 < usable <= total", d.TotalBytes, d.UsableBytes)
			}
		}
	})

	t.Run("DescribeProducers", func(t *testing.T) {
		const topic = "adm-producers"
		createTopic(t, adm, topic, 1, nil)
		pcl := b.Client(t)
		var last *kgo.Record
		for i := 0; i < 5; i++ {
			r := &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}
			must(t, pcl.ProduceSync(ctx(), r).FirstErr(), "produce")
			last = r
		}
		var ts kadm.TopicsSet
		ts.Add(topic, 0)
		dp, err := adm.DescribeProducers(ctx(), ts)
		apiGap(t, v, kmsg.DescribeProducers, err)
		must(t, err, "DescribeProducers")
		p := dp[topic].Partitions[0]
		must(t, p.Err, "DescribeProducers partition")
		if p.Leader != 1 || len(p.ActiveProducers) != 1 {
			t.Fatalf("DescribeProducers %s/0: leader %d producers %+v, want 1 and one producer", topic, p.Leader, p.ActiveProducers)
		}
		for _, ap := range p.ActiveProducers {
			if ap.ProducerID != last.ProducerID || ap.ProducerEpoch != last.ProducerEpoch || ap.LastSequence != 4 ||
				ap.LastTimestamp != last.Timestamp.UnixMilli() || ap.CoordinatorEpoch != -1 || ap.CurrentTxnStartOffset != -1 {
				t.Errorf("DescribeProducers producer %+v, want id %d epoch %d last sequence 4 timestamp %d, no transaction",
					ap, last.ProducerID, last.ProducerEpoch, last.Timestamp.UnixMilli())
			}
		}
	})

	t.Run("ElectLeaders", func(t *testing.T) {
		const topic = "adm-elect"
		createTopic(t, adm, topic, 2, nil)
		var ts kadm.TopicsSet
		ts.Add(topic, 0, 1)
		for _, how := range []kadm.ElectLeadersHow{kadm.ElectPreferredReplica, kadm.ElectLiveReplica} {
			r, err := adm.ElectLeaders(ctx(), how, ts)
			apiGap(t, v, kmsg.ElectLeaders, err)
			must(t, err, "ElectLeaders")
			// The only replica already leads: ELECTION_NOT_NEEDED for each named partition.
			for p := int32(0); p < 2; p++ {
				if e := r[topic][p]; !errors.Is(e.Err, kerr.ElectionNotNeeded) {
					t.Errorf("ElectLeaders(%v) %s/%d: %v, want ELECTION_NOT_NEEDED", how, topic, p, e.Err)
				}
			}
		}
		var missing kadm.TopicsSet
		missing.Add("adm-missing", 0)
		r, err := adm.ElectLeaders(ctx(), kadm.ElectPreferredReplica, missing)
		must(t, err, "ElectLeaders of a missing topic")
		if e := r["adm-missing"][0]; !errors.Is(e.Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("ElectLeaders of a missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", e.Err)
		}
	})

	t.Run("PartitionReassignments", func(t *testing.T) {
		const topic = "adm-reassign"
		createTopic(t, adm, topic, 2, nil)
		// Null topics: every reassignment in progress (kadm sends nothing for an empty set).
		all := kmsg.NewPtrListPartitionReassignmentsRequest()
		allResp, err := all.RequestWith(ctx(), cl)
		apiGap(t, v, kmsg.ListPartitionReassignments, err)
		must(t, err, "ListPartitionReassignments (all)")
		must(t, kerr.ErrorForCode(allResp.ErrorCode), "ListPartitionReassignments (all) error code")
		if len(allResp.Topics) != 0 {
			t.Errorf("ListPartitionReassignments (all) = %+v, want none in progress", allResp.Topics)
		}
		var req kadm.AlterPartitionAssignmentsReq
		req.Assign(topic, 0, []int32{1})
		ar, err := adm.AlterPartitionAssignments(ctx(), req)
		apiGap(t, v, kmsg.AlterPartitionAssignments, err)
		must(t, err, "AlterPartitionAssignments")
		if r := ar[topic][0]; r.Err != nil {
			t.Errorf("AlterPartitionAssignments to [1]: %v (%s), want success", r.Err, r.ErrMessage)
		}
		var bad kadm.AlterPartitionAssignmentsReq
		bad.Assign(topic, 1, []int32{2})
		ar, err = adm.AlterPartitionAssignments(ctx(), bad)
		must(t, err, "AlterPartitionAssignments to a missing broker")
		if r := ar[topic][1]; !errors.Is(r.Err, kerr.InvalidReplicaAssignment) {
			t.Errorf("AlterPartitionAssignments to broker 2: %v (%s), want INVALID_REPLICA_ASSIGNMENT", r.Err, r.ErrMessage)
		}
		var ts kadm.TopicsSet
		ts.Add(topic, 0, 1)
		lr, err := adm.ListPartitionReassignments(ctx(), ts)
		must(t, err, "ListPartitionReassignments of a topic")
		if len(lr) != 0 {
			t.Errorf("ListPartitionReassignments = %+v, want none in progress", lr)
		}
	})

	t.Run("DescribeQuorum", func(t *testing.T) {
		req := kmsg.NewPtrDescribeQuorumRequest()
		rt := kmsg.NewDescribeQuorumRequestTopic()
		rt.Topic = "__cluster_metadata"
		rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(), cl)
		apiGap(t, v, kmsg.DescribeQuorum, err)
		must(t, err, "DescribeQuorum")
		must(t, kerr.ErrorForCode(resp.ErrorCode), "DescribeQuorum error code")
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("DescribeQuorum = %+v, want __cluster_metadata/0", resp)
		}
		p := resp.Topics[0].Partitions[0]
		must(t, kerr.ErrorForCode(p.ErrorCode), "DescribeQuorum partition")
		if p.LeaderID != 1 || p.LeaderEpoch < 0 || p.HighWatermark < 0 || len(p.CurrentVoters) != 1 ||
			p.CurrentVoters[0].ReplicaID != 1 || len(p.Observers) != 0 {
			t.Errorf("DescribeQuorum partition %+v, want leader 1, voters [1], no observers", p)
		}
		t.Run("Epoch", func(t *testing.T) {
			// Kafka's single voter won its first election: epoch 1. Vltava keeps no metadata
			// log, so its high watermark and the voter's log end offset are 0 (Kafka's grow with
			// every metadata record); only their order is Kafka's.
			if p.LeaderEpoch < 1 || p.CurrentVoters[0].LogEndOffset < p.HighWatermark {
				t.Errorf("DescribeQuorum epoch %d high watermark %d voter log end %d, want epoch >= 1, log end >= high watermark",
					p.LeaderEpoch, p.HighWatermark, p.CurrentVoters[0].LogEndOffset)
			}
		})
		if resp.Version >= 2 && (len(resp.Nodes) != 1 || resp.Nodes[0].NodeID != 1) {
			t.Errorf("DescribeQuorum v%d nodes %+v, want node 1", resp.Version, resp.Nodes)
		}
	})

	t.Run("DescribeTopicPartitions", func(t *testing.T) {
		const topic = "adm-dtp"
		createTopic(t, adm, topic, 3, nil)
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
		rt.Topic = topic
		req.Topics = append(req.Topics, rt)
		req.ResponsePartitionLimit = 2
		resp, err := req.RequestWith(ctx(), cl)
		apiGap(t, v, kmsg.DescribeTopicPartitions, err)
		must(t, err, "DescribeTopicPartitions")
		md, err := adm.Metadata(ctx(), topic)
		must(t, err, "Metadata")
		if len(resp.Topics) != 1 {
			t.Fatalf("DescribeTopicPartitions = %+v, want one topic", resp)
		}
		rtp := resp.Topics[0]
		must(t, kerr.ErrorForCode(rtp.ErrorCode), "DescribeTopicPartitions topic")
		if rtp.Topic == nil || *rtp.Topic != topic || rtp.TopicID != md.Topics[topic].ID || rtp.IsInternal {
			t.Errorf("DescribeTopicPartitions topic %v id %v, want %s id %v", rtp.Topic, rtp.TopicID, topic, md.Topics[topic].ID)
		}
		// The partition limit of 2 leaves a cursor at partition 2.
		if len(rtp.Partitions) != 2 || resp.NextCursor == nil || resp.NextCursor.Topic != topic || resp.NextCursor.Partition != 2 {
			t.Errorf("DescribeTopicPartitions with limit 2: %d partitions, cursor %+v, want 2 and a cursor at %s/2", len(rtp.Partitions), resp.NextCursor, topic)
		}
		for _, p := range rtp.Partitions {
			if p.ErrorCode != 0 || p.LeaderID != 1 || !slices.Equal(p.Replicas, []int32{1}) || !slices.Equal(p.ISR, []int32{1}) {
				t.Errorf("DescribeTopicPartitions %s/%d: %+v, want leader 1, replicas and ISR [1]", topic, p.Partition, p)
			}
		}
	})

	t.Run("ListConfigResources", func(t *testing.T) {
		createTopic(t, adm, "adm-lcr", 1, nil)
		lr, err := adm.ListConfigResources(ctx(), kadm.ConfigResourceTopic)
		apiGap(t, v, kmsg.ListConfigResources, err)
		must(t, err, "ListConfigResources")
		must(t, lr.Err, "ListConfigResources result")
		names := lr.Names()
		if !slices.Contains(names, "adm-lcr") {
			t.Errorf("ListConfigResources(topic) = %v, want adm-lcr among them", names)
		}
		for _, r := range lr.Resources {
			if r.Type != kadm.ConfigResourceTopic {
				t.Errorf("ListConfigResources(topic) returned %s of type %v", r.Name, r.Type)
			}
		}
	})
}
