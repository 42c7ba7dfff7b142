// KafkaJS round trip: admin create (6 partitions), keyed produce with gzip and no compression,
// offsets (latest/earliest, by timestamp), describe + alter a topic config. Prints one JSON line.
// Usage: node roundtrip.js BOOTSTRAP TOPIC PER_CODEC
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, perCodecArg] = process.argv.slice(2);
  const perCodec = Number(perCodecArg);
  const kafka = new Kafka({ clientId: 'vltava-test', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 6 }], waitForLeaders: true });
  if (!created) throw new Error('createTopics returned false');
  const lookupTs = Date.now() - 1000;
  const producer = kafka.producer();
  await producer.connect();
  // KafkaJS has gzip built in; other codecs need plug-ins, so it sends gzip and uncompressed,
  // each perCodec * 2.5 records, to reach the same total as the other clients.
  const codecs = [['gzip', CompressionTypes.GZIP], ['none', CompressionTypes.None]];
  const each = Math.ceil((perCodec * 5) / codecs.length);
  let produced = 0;
  for (const [name, codec] of codecs) {
    for (let start = 0; start < each; start += 1000) {
      const messages = [];
      for (let i = start; i < Math.min(start + 1000, each); i++) {
        const key = 'k' + (i % 50);
        messages.push({ key, value: `${key}|${i}|${name}` });
      }
      await producer.send({ topic, compression: codec, acks: -1, messages });
      produced += messages.length;
    }
  }
  await producer.disconnect();
  const offsets = await admin.fetchTopicOffsets(topic);
  const byTimestamp = await admin.fetchTopicOffsetsByTimestamp(topic, lookupTs);
  const describe = async () => {
    const r = await admin.describeConfigs({ resources: [{ type: 2, name: topic }], includeSynonyms: false });
    return r.resources[0].configEntries.find(e => e.configName === 'retention.ms').configValue;
  };
  const configBefore = await describe();
  await admin.alterConfigs({ resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '900000' }] }] });
  const configAfter = await describe();
  await admin.disconnect();
  console.log(JSON.stringify({ produced, offsets, byTimestamp, configBefore, configAfter, lookupTs }));
}

main().catch(e => { console.error(e); process.exit(1); });
