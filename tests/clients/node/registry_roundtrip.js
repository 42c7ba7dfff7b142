// @kafkajs/confluent-schema-registry + KafkaJS against Vltava's Schema Registry: registers an Avro
// schema under TOPIC-value, encodes COUNT events (Confluent wire format), produces them, reads them
// back with a consumer group, decodes them, and prints one JSON line:
//   {id, latestId, schema, sent, received, wire: [{magic, id}], offsets}
// Usage: node registry_roundtrip.js BOOTSTRAP REGISTRY_URL TOPIC COUNT
const { Kafka, logLevel } = require('kafkajs');
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry');

const schema = {
  type: 'record',
  name: 'TaskUpdated',
  namespace: 'com.todo.events',
  fields: [
    { name: 'id', type: { type: 'string', logicalType: 'uuid' } },
    { name: 'title', type: 'string' },
    { name: 'description', type: ['null', 'string'], default: null },
    { name: 'updated_at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'priority', type: { type: 'enum', name: 'Priority', symbols: ['Low', 'Medium', 'High'] }, default: 'Medium' },
    { name: 'tags', type: { type: 'array', items: 'string' }, default: [] },
    { name: 'completed', type: 'boolean', default: false },
  ],
};

function event(i) {
  const hex = i.toString(16).padStart(12, '0');
  return {
    id: `6f1c2d3e-4a5b-4c6d-8e7f-${hex}`,
    title: `task ${i}`,
    description: i % 2 === 0 ? null : `details ${i}`,
    updated_at: 1767323045000 + i,
    priority: ['Low', 'Medium', 'High'][i % 3],
    tags: i % 3 === 0 ? [] : [`t${i}`, 'kafkajs'],
    completed: i % 4 === 0,
  };
}

async function main() {
  const [bootstrap, registryUrl, topic, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const subject = `${topic}-value`;
  const registry = new SchemaRegistry({ host: registryUrl });
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject });
  const latestId = await registry.getLatestSchemaId(subject);

  const kafka = new Kafka({ clientId: 'vltava-test', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();

  const sent = [];
  const messages = [];
  for (let i = 0; i < count; i++) {
    const payload = event(i);
    sent.push(payload);
    messages.push({ key: payload.id, value: await registry.encode(id, payload) });
  }
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();

  const received = [];
  const wire = [];
  const offsets = [];
  const consumer = kafka.consumer({ groupId: `registry-${topic}`, sessionTimeout: 6000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let done;
  const finished = new Promise(resolve => { done = resolve; });
  const timer = setTimeout(() => done(), 60000);
  await consumer.run({
    eachMessage: async ({ message }) => {
      wire.push({ magic: message.value.readUInt8(0), id: message.value.readInt32BE(1) });
      offsets.push(Number(message.offset));
      received.push(await registry.decode(message.value));
      if (received.length >= count) done();
    },
  });
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  if (received.length < count) throw new Error(`read ${received.length} of ${count} records`);
  console.log(JSON.stringify({ id, latestId, schema, sent, received, wire, offsets }));
}

main().catch(e => { console.error(e); process.exit(1); });
