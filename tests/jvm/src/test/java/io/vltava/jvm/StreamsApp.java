package io.vltava.jvm;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The Kafka Streams application of StreamsTest (run in the test JVM, or in a child JVM through
 * {@link StreamsAppMain}), and the data it is fed with, so that the expected output can be
 * computed exactly.
 *
 * <p>Input: {@value #EVENTS} (key user, value {@code eventId:amount}) and {@value #PROMOS} (key
 * user, value {@code promoId}), 3 partitions each, explicit record timestamps. Topology:
 * <ul>
 * <li>per user, the set of event ids seen with their amounts (persistent RocksDB store
 * {@value #USER_STORE}, changelog {@code <app>-user-events-store-changelog}); its summary
 * {@code count=N sum=S} goes to {@value #USER_TOTALS};</li>
 * <li>per user, a plain {@code count()} ({@value #COUNT_STORE}) to {@value #USER_COUNTS};</li>
 * <li>re-keyed by region ({@code groupBy}: repartition topic {@code <app>-by-region-repartition}),
 * the same event set per region ({@value #REGION_STORE}) to {@value #REGION_TOTALS};</li>
 * <li>a KStream-KStream inner join of events and promos of the same user within
 * {@link #JOIN_WINDOW} (window stores with changelogs) to {@value #JOINED}, value
 * {@code eventId+promoId}.</li>
 * </ul>
 *
 * <p>Why event-id sets and not sums: under at-least-once a crash (of the broker or of the
 * application) re-processes the records after the last commit, and a {@code sum()} or
 * {@code count()} then counts them twice, so its final value is only bounded below. Adding an
 * event id to a set is idempotent: re-processing an event leaves the set as it was, so the count
 * and sum derived from the set are exactly checkable after any number of crashes. The plain
 * {@code count()} is kept to show the difference: exact without a failure, at least the true count
 * after one.
 */
public final class StreamsApp {
    public static final String EVENTS = "events";
    public static final String PROMOS = "promos";
    public static final String USER_TOTALS = "user-totals";
    public static final String USER_COUNTS = "user-counts";
    public static final String REGION_TOTALS = "region-totals";
    public static final String JOINED = "event-promo-joined";
    public static final int PARTITIONS = 3;

    public static final String USER_STORE = "user-events-store";
    public static final String COUNT_STORE = "user-counts-store";
    public static final String REGION_STORE = "region-events-store";
    public static final String REPARTITION = "by-region";
    public static final String JOIN_STORE = "event-promo";

    public static final Duration JOIN_WINDOW = Duration.ofMillis(1500);
    /** Large enough that no record is ever too late, whatever order the tasks read the inputs in. */
    public static final Duration JOIN_GRACE = Duration.ofMinutes(5);

    public static final int USERS = 20;
    public static final int EVENT_COUNT = 600;
    public static final int PROMO_COUNT = 60;
    private static final String[] REGIONS = {"north", "east", "south", "west"};

    private StreamsApp() {
    }

    // ---- the data -------------------------------------------------------------------------

    public static String eventId(int i) {
        return String.format("e%05d", i);
    }

    public static String eventUser(int i) {
        return String.format("user-%02d", i % USERS);
    }

    public static int amount(int i) {
        return (i * 37) % 100 + 1;
    }

    public static String eventValue(int i) {
        return eventId(i) + ":" + amount(i);
    }

    /** Events are 100 ms apart from {@code base}. */
    public static long eventTimestamp(long base, int i) {
        return base + i * 100L;
    }

    public static String promoId(int j) {
        return String.format("p%04d", j);
    }

    public static String promoUser(int j) {
        return String.format("user-%02d", j % USERS);
    }

    /** Promos are a second apart, 50 ms after an event's time: each falls within the window of ~30 events. */
    public static long promoTimestamp(long base, int j) {
        return base + j * 1000L + 50;
    }

    public static String regionOf(String user) {
        return REGIONS[Integer.parseInt(user.substring(user.indexOf('-') + 1)) % REGIONS.length];
    }

    // ---- the aggregate ------------------------------------------------------------------------

    /** {@code set} ({@code id=amount,id=amount}, sorted) with the event {@code id:amount} added. */
    static String addEvent(String set, String event) {
        TreeMap<String, String> m = parse(set);
        int colon = event.indexOf(':');
        m.put(event.substring(0, colon), event.substring(colon + 1));
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, String> e : m.entrySet()) {
            if (sb.length() > 0) {
                sb.append(',');
            }
            sb.append(e.getKey()).append('=').append(e.getValue());
        }
        return sb.toString();
    }

    private static TreeMap<String, String> parse(String set) {
        TreeMap<String, String> m = new TreeMap<>();
        if (set != null && !set.isEmpty()) {
            for (String kv : set.split(",")) {
                int eq = kv.indexOf('=');
                m.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
        return m;
    }

    static String summaryOf(String set) {
        TreeMap<String, String> m = parse(set);
        long sum = m.values().stream().mapToLong(Long::parseLong).sum();
        return summary(m.size(), sum);
    }

    public static String summary(long count, long sum) {
        return "count=" + count + " sum=" + sum;
    }

    static String eventIdOf(String event) {
        return event.substring(0, event.indexOf(':'));
    }

    // ---- the application ----------------------------------------------------------------------

    public static Topology topology() {
        Serde<String> s = Serdes.String();
        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> events = b.stream(EVENTS, Consumed.with(s, s));
        KStream<String, String> promos = b.stream(PROMOS, Consumed.with(s, s));

        events.groupByKey(Grouped.with(s, s))
                .aggregate(() -> "", (user, event, set) -> addEvent(set, event),
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(USER_STORE)
                                .withKeySerde(s).withValueSerde(s))
                .toStream()
                .mapValues(set -> summaryOf(set))
                .to(USER_TOTALS, Produced.with(s, s));

        events.groupByKey(Grouped.with(s, s))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(COUNT_STORE)
                        .withKeySerde(s).withValueSerde(Serdes.Long()))
                .toStream()
                .mapValues(String::valueOf)
                .to(USER_COUNTS, Produced.with(s, s));

        events.groupBy((user, event) -> regionOf(user), Grouped.with(REPARTITION, s, s))
                .aggregate(() -> "", (region, event, set) -> addEvent(set, event),
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(REGION_STORE)
                                .withKeySerde(s).withValueSerde(s))
                .toStream()
                .mapValues(set -> summaryOf(set))
                .to(REGION_TOTALS, Produced.with(s, s));

        events.join(promos, (event, promo) -> eventIdOf(event) + "+" + promo,
                        JoinWindows.ofTimeDifferenceAndGrace(JOIN_WINDOW, JOIN_GRACE),
                        StreamJoined.with(s, s, s).withStoreName(JOIN_STORE))
                .to(JOINED, Produced.with(s, s));
        return b.build();
    }

    /**
     * At-least-once, one stream thread, short commit interval; the classic protocol's session
     * timeout is Kafka's group.min.session.timeout.ms (6 s), heartbeats every second.
     */
    public static Properties config(String bootstrap, String appId, Path stateDir, String protocol) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, protocol);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG), 30_000);
        if (protocol.equals("classic")) {
            // The streams protocol's session timeout and heartbeat interval are the broker's.
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6_000);
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1_000);
        }
        return p;
    }

    // ---- what the output must be --------------------------------------------------------------

    /** The output the application must reach once events {@code 0..events-1} and all promos are processed. */
    public record Expected(Map<String, String> userTotals, Map<String, String> regionTotals,
                           Map<String, String> userCounts, Set<String> joined) {
    }

    public static Expected expected(long base, int events) {
        Map<String, long[]> perUser = new TreeMap<>();
        Map<String, long[]> perRegion = new TreeMap<>();
        for (int i = 0; i < events; i++) {
            long[] u = perUser.computeIfAbsent(eventUser(i), k -> new long[2]);
            u[0]++;
            u[1] += amount(i);
            long[] r = perRegion.computeIfAbsent(regionOf(eventUser(i)), k -> new long[2]);
            r[0]++;
            r[1] += amount(i);
        }
        Map<String, String> userTotals = new HashMap<>();
        Map<String, String> userCounts = new HashMap<>();
        perUser.forEach((k, v) -> {
            userTotals.put(k, summary(v[0], v[1]));
            userCounts.put(k, String.valueOf(v[0]));
        });
        Map<String, String> regionTotals = new HashMap<>();
        perRegion.forEach((k, v) -> regionTotals.put(k, summary(v[0], v[1])));
        Set<String> joined = new HashSet<>();
        long w = JOIN_WINDOW.toMillis();
        for (int i = 0; i < events; i++) {
            for (int j = 0; j < PROMO_COUNT; j++) {
                if (eventUser(i).equals(promoUser(j))
                        && Math.abs(eventTimestamp(base, i) - promoTimestamp(base, j)) <= w) {
                    joined.add(eventUser(i) + "|" + eventId(i) + "+" + promoId(j));
                }
            }
        }
        return new Expected(userTotals, regionTotals, userCounts, joined);
    }
}
