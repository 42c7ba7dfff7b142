// A KafkaJS consumer-group member for the group tests (SIGKILL-able).
// Usage: node group_worker.js BOOTSTRAP TOPIC GROUP OUTFILE
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');
(async () => {
  const [bootstrap, topic, group, outfile] = process.argv.slice(2);
  const out = fs.openSync(outfile, 'a');
  const kafka = new Kafka({ clientId: 'vltava-test', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommitInterval: 500,
    eachMessage: async ({ partition, message }) => {
      fs.writeSync(out, JSON.stringify({ p: partition, o: Number(message.offset), v: message.value.toString() }) + '\n');
    },
  });
})().catch(e => { console.error(e); process.exit(1); });
