// Produces one record per key with KafkaJS's default (murmur2, Java-compatible) partitioner.
// Usage: node produce_keys.js BOOTSTRAP TOPIC key1,key2,...
const { Kafka, logLevel } = require('kafkajs');
(async () => {
  const [bootstrap, topic, keys] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'vltava-test', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  await producer.send({ topic, messages: keys.split(',').map(k => ({ key: k, value: `${k}|0|kjs` })) });
  await producer.disconnect();
})().catch(e => { console.error(e); process.exit(1); });
