package franz

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produced is what a produceKeyed call wrote: per key, the sequence numbers in produce order,
// and per key the partition it went to.
type produced struct {
	n         int
	perKey    map[string][]int
	partition map[string]int32
}

// produceKeyed produces n records over `keys` keys to topic with cl (franz-go's default
// producer: idempotent, acks=all), value "key|seq|padding"; it fails the test on any error.
func produceKeyed(t testing.TB, cl *kgo.Client, topic string, n, keys, startSeq int) produced {
	t.Helper()
	p := produced{n: n, perKey: map[string][]int{}, partition: map[string]int32{}}
	var (
		mu       sync.Mutex
		firstErr error
		nonIdem  atomic.Int64
	)
	pad := strings.Repeat("vltava-franz-", 8)
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("key-%03d", i%keys)
		seq := startSeq + i
		p.perKey[key] = append(p.perKey[key], seq)
		r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(key + "|" + strconv.Itoa(seq) + "|" + pad)}
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("produce %s: %w", r.Key, err)
			}
			if err == nil {
				if r.ProducerID < 0 {
					nonIdem.Add(1)
				}
				if prev, ok := p.partition[string(r.Key)]; ok && prev != r.Partition {
					firstErr = fmt.Errorf("key %s went to partitions %d and %d", r.Key, prev, r.Partition)
				}
				p.partition[string(r.Key)] = r.Partition
			}
		})
	}
	must(t, cl.Flush(ctxT(t, 60*time.Second)), "flush")
	mu.Lock()
	defer mu.Unlock()
	must(t, firstErr, "produce")
	if nonIdem.Load() > 0 {
		t.Fatalf("%d records were produced without a producer id: the producer was not idempotent", nonIdem.Load())
	}
	return p
}

// consumeN reads topic from the start with a direct (group-less) consumer until it has n
// records, then checks with ListEndOffsets that the log holds exactly n. extra are more options.
func consumeN(t testing.TB, b *Broker, topic string, n int, extra ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts := append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, extra...)
	cl := b.Client(t, opts...)
	defer cl.Close()
	var recs []*kgo.Record
	ctx := ctxT(t, 60*time.Second)
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the deadline", len(recs), n, topic)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		recs = append(recs, fs.Records()...)
	}
	if len(recs) != n {
		t.Fatalf("consumed %d records of %s, want %d", len(recs), topic, n)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctxT(t, 30*time.Second), topic)
	must(t, err, "ListEndOffsets")
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		must(t, o.Err, "ListEndOffsets partition")
		total += o.Offset
	})
	if total != int64(n) {
		t.Fatalf("end offsets of %s add up to %d, want %d (duplicates or losses in the log)", topic, total, n)
	}
	return recs
}

// checkKeyed checks recs against p: every produced record exactly once, per-key order kept,
// each key on one partition (the one the producer reported), offsets increasing per partition.
func checkKeyed(t testing.TB, p produced, recs []*kgo.Record) {
	t.Helper()
	got := map[string][]int{}
	lastOffset := map[int32]int64{}
	for _, r := range recs {
		parts := strings.SplitN(string(r.Value), "|", 3)
		if len(parts) != 3 || parts[0] != string(r.Key) {
			t.Fatalf("record %s/%d@%d: malformed value %q", r.Topic, r.Partition, r.Offset, r.Value)
		}
		seq, err := strconv.Atoi(parts[1])
		must(t, err, "parse seq")
		got[parts[0]] = append(got[parts[0]], seq)
		if want := p.partition[parts[0]]; r.Partition != want {
			t.Fatalf("key %s read from partition %d, produced to %d", parts[0], r.Partition, want)
		}
		if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, last)
		}
		lastOffset[r.Partition] = r.Offset
	}
	if len(got) != len(p.perKey) {
		t.Fatalf("read %d keys, produced %d", len(got), len(p.perKey))
	}
	for k, want := range p.perKey {
		g := got[k]
		if fmt.Sprint(g) != fmt.Sprint(want) {
			t.Fatalf("key %s: read sequence %v, produced %v", k, abbreviate(g), abbreviate(want))
		}
	}
}

func abbreviate(s []int) string {
	if len(s) <= 20 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v ... %v (%d)", s[:10], s[len(s)-10:], len(s))
}

// TestProduceConsumeCodecs produces a few thousand keyed records with each of franz-go's codecs
// to a 6-partition topic and reads them back: all of them once, per-key order, and the batches
// come back compressed as they were produced (compression.type=producer).
func TestProduceConsumeCodecs(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		id    uint8
	}{
		{"none", kgo.NoCompression(), 0},
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	}
	const n, keys = 3000, 60
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := "codec-" + c.name
			createTopic(t, adm, topic, 6, nil)
			pcl := b.Client(t, kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(5*time.Millisecond))
			p := produceKeyed(t, pcl, topic, n, keys, 0)
			if len(p.partition) != keys {
				t.Fatalf("%d keys acknowledged, want %d", len(p.partition), keys)
			}
			used := map[int32]bool{}
			for _, part := range p.partition {
				used[part] = true
			}
			if len(used) < 2 {
				t.Fatalf("%d keys all went to partitions %v", keys, used)
			}

			var mu sync.Mutex
			seen := map[uint8]int{}
			hook := batchHook(func(m kgo.FetchBatchMetrics) {
				mu.Lock()
				seen[m.CompressionType] += m.NumRecords
				mu.Unlock()
			})
			recs := consumeN(t, b, topic, n, kgo.WithHooks(hook))
			checkKeyed(t, p, recs)
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 || seen[c.id] < n {
				t.Fatalf("fetched batches by compression type (records): %v, want all %d as %d", seen, n, c.id)
			}
		})
	}
}

type batchHook func(kgo.FetchBatchMetrics)

func (h batchHook) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h(m)
}

// TestKill9Restart: records acknowledged with acks=all survive a SIGKILL of the broker; after a
// restart on the same port and data dir the same producer client goes on (new records appended
// once), and a consumer reads everything exactly once in per-key order.
func TestKill9Restart(t *testing.T) {
	b := StartBroker(t)
	adm := b.Admin(t)
	const topic = "restart"
	createTopic(t, adm, topic, 6, nil)
	pcl := b.Client(t, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	p1 := produceKeyed(t, pcl, topic, 2000, 40, 0)
	// A group's committed offsets are kept too.
	var os kadm.Offsets
	for p := int32(0); p < 6; p++ {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(p + 1), LeaderEpoch: -1})
	}
	must(t, adm.CommitAllOffsets(ctxT(t, 30*time.Second), "restart-group", os), "CommitAllOffsets")

	b.Kill9()
	b.Restart()

	fo, err := adm.FetchOffsets(ctxT(t, 30*time.Second), "restart-group")
	must(t, err, "FetchOffsets after restart")
	for p := int32(0); p < 6; p++ {
		if o, ok := fo.Lookup(topic, p); !ok || o.Err != nil || o.At != int64(p+1) {
			t.Errorf("after restart the committed offset of %s/%d is %+v, want %d", topic, p, o, p+1)
		}
	}

	p2 := produceKeyed(t, pcl, topic, 1000, 40, 2000)
	for k, seqs := range p2.perKey {
		p1.perKey[k] = append(p1.perKey[k], seqs...)
		if p1.partition[k] != p2.partition[k] {
			t.Fatalf("key %s: partition %d before the restart, %d after", k, p1.partition[k], p2.partition[k])
		}
	}
	p1.n += p2.n
	recs := consumeN(t, b, topic, p1.n)
	checkKeyed(t, p1, recs)

	// The topic's metadata came back as it was.
	md, err := adm.Metadata(ctxT(t, 30*time.Second), topic)
	must(t, err, "Metadata")
	if got := len(md.Topics[topic].Partitions); got != 6 {
		t.Fatalf("after restart %s has %d partitions, want 6", topic, got)
	}
}
