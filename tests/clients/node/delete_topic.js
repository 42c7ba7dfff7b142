// Usage: node delete_topic.js BOOTSTRAP TOPIC
const { Kafka, logLevel } = require('kafkajs');
(async () => {
  const [bootstrap, topic] = process.argv.slice(2);
  const admin = new Kafka({ clientId: 'vltava-test', brokers: [bootstrap], logLevel: logLevel.ERROR }).admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
})().catch(e => { console.error(e); process.exit(1); });
