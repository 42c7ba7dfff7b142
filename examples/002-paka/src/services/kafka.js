// Kafka connection of the Paka API: one producer, the four consumer groups, and a connection
// monitor. While the broker is reachable, events go through Kafka; while it is not, `publish`
// reports `via: 'sync'` and the caller processes the event in-process. The service keeps
// retrying in the background and switches back to Kafka once the broker answers again.
const crypto = require('crypto')
const { Kafka, Partitioners, logLevel } = require('kafkajs')
const config = require('../config')
const { PROCESSORS, processorFor } = require('./processors')

const { TOPICS } = config
const cfg = config.kafka

const clientConfig = {
  clientId: cfg.clientId,
  brokers: cfg.brokers.split(',').map(s => s.trim()).filter(Boolean),
  logLevel: logLevel[cfg.logLevel] === undefined ? logLevel.WARN : logLevel[cfg.logLevel],
  connectionTimeout: 3000,
  requestTimeout: 10000,
}
// Producer and consumers retry transient errors.
const kafka = new Kafka({ ...clientConfig, retry: { initialRetryTime: 200, retries: 5 } })
// The admin client (topics, connection checks) does not retry connecting: an unreachable broker
// is reported at once, which is what the checks are for.
const probeKafka = new Kafka({ ...clientConfig, retry: { retries: 0 } })

const state = {
  connected: false,
  generation: 0, // bumped on every connection attempt and every loss; stale clients are ignored
  admin: null,
  producer: null,
  consumers: [],
  lastError: null,
  connectedAt: null,
  disconnectedAt: null,
  stopping: false,
  reconnectTimer: null,
  healthTimer: null,
  connecting: null,
  lost: null, // settles when the current connection is lost (ends the wait of in-flight sends)
  markLost: null,
}

const log = (...args) => console.log('[kafka]', ...args)

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function encode(event) {
  return {
    key: event.eventId,
    value: JSON.stringify(event),
    headers: { 'event-type': event.type, 'client-id': cfg.clientId },
  }
}

function newEvent(type, payload) {
  return { eventId: crypto.randomUUID(), type, occurredAt: new Date().toISOString(), payload }
}

// Disconnects the given clients, never waiting more than a few seconds for a dead broker.
async function closeClients(clients) {
  await Promise.all(
    clients.filter(Boolean).map(c => withTimeout(c.disconnect(), 5000, 'disconnect').catch(() => {}))
  )
}

async function ensureTopics(admin) {
  const existing = new Set(await admin.listTopics())
  const missing = Object.values(TOPICS).filter(t => !existing.has(t))
  if (missing.length === 0) return
  await admin.createTopics({
    waitForLeaders: true,
    topics: missing.map(topic => ({
      topic,
      numPartitions: cfg.partitions,
      replicationFactor: cfg.replicationFactor,
    })),
  })
  log(`created topics ${missing.join(', ')}`)
}

// One connection attempt: admin (topics), producer, then the four consumer groups, each of
// which has joined its group when this resolves.
async function connectOnce() {
  const generation = ++state.generation
  const admin = probeKafka.admin({ retry: { retries: 3, initialRetryTime: 200 } })
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 2, initialRetryTime: 200 },
  })
  const consumers = []
  try {
    await admin.connect()
    await ensureTopics(admin)
    await producer.connect()
    for (const [groupId, { topic, handle }] of Object.entries(PROCESSORS)) {
      const consumer = kafka.consumer({
        groupId,
        sessionTimeout: cfg.sessionTimeoutMs,
        heartbeatInterval: cfg.heartbeatIntervalMs,
        // We restart the whole connection ourselves (see onLost), with fresh clients.
        retry: { retries: 5, initialRetryTime: 300, restartOnFailure: async () => false },
      })
      consumers.push(consumer)
      let crashed = null
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        crashed = payload.error
        if (generation === state.generation && state.connected) {
          onLost(`consumer ${groupId} crashed: ${payload.error && payload.error.message}`)
        }
      })
      await consumer.connect()
      // A group that has never committed an offset starts at the beginning of its topic, so
      // events published before its first join (e.g. right after the topics were created) are
      // processed too; afterwards it resumes from its committed offsets.
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ topic: t, partition, message }) => {
          let event
          try {
            event = JSON.parse(message.value.toString())
          } catch (e) {
            log(`${groupId}: skipping unreadable message at ${t}/${partition}@${message.offset}`)
            return
          }
          await handle(event, {
            via: 'kafka',
            topic: t,
            partition,
            offset: Number(message.offset),
            emit: (followTopic, payload) => emitFollowUp(followTopic, payload, event),
          })
        },
      })
      // run() resolves once the member has joined and synced its group, or after a crash.
      if (crashed) throw crashed
    }
    if (state.stopping) throw new Error('shutting down')
  } catch (e) {
    await closeClients([...consumers, producer, admin])
    throw e
  }
  let markLost
  const lost = new Promise((_, reject) => {
    markLost = reject
  })
  lost.catch(() => {})
  Object.assign(state, { admin, producer, consumers, lost, markLost, connected: true, lastError: null, connectedAt: new Date() })
  log(`connected to ${cfg.brokers} as ${cfg.clientId}; ${consumers.length} consumer groups running`)
}

// Follow-up events of the processors (notification.sent, document.embedded, report.ready).
async function emitFollowUp(topic, payload, cause) {
  const event = { ...newEvent(topic, payload), causationId: cause.eventId }
  if (!state.connected || !state.producer) {
    log(`not connected, not queued: ${topic} ${JSON.stringify(payload)}`)
    return
  }
  await state.producer.send({ topic, messages: [encode(event)] })
}

function scheduleReconnect() {
  if (state.stopping || state.reconnectTimer || state.connecting) return
  state.reconnectTimer = setTimeout(() => {
    state.reconnectTimer = null
    connect()
  }, cfg.reconnectMs)
}

// Connects, retrying every KAFKA_RECONNECT_MS until the broker answers.
function connect() {
  if (state.connecting || state.connected || state.stopping) return state.connecting
  state.connecting = (async () => {
    try {
      await connectOnce()
    } catch (e) {
      if (state.lastError !== e.message) log(`not connected (${e.message}); retrying every ${cfg.reconnectMs} ms`)
      state.lastError = e.message
    } finally {
      state.connecting = null
    }
    if (!state.connected) scheduleReconnect()
  })()
  return state.connecting
}

// The broker went away: fall back to synchronous processing, drop the clients, reconnect.
function onLost(reason) {
  if (!state.connected) return
  log(`connection lost (${reason}); processing events synchronously until it is back`)
  state.connected = false
  state.lastError = reason
  state.disconnectedAt = new Date()
  state.generation++
  state.markLost(new Error(`connection lost: ${reason}`))
  const old = [...state.consumers, state.producer, state.admin]
  Object.assign(state, { admin: null, producer: null, consumers: [] })
  closeClients(old).finally(scheduleReconnect)
}

// Connection monitor: a Metadata round trip every KAFKA_HEALTH_CHECK_MS.
let checking = false
async function healthCheck() {
  if (!state.connected || checking) return
  checking = true
  const { admin, generation } = state
  try {
    await withTimeout(admin.describeCluster(), 3000, 'metadata request')
  } catch (e) {
    if (generation === state.generation) onLost(e.message)
  } finally {
    checking = false
  }
}

function start() {
  state.healthTimer = setInterval(healthCheck, cfg.healthCheckMs)
  return connect()
}

async function stop() {
  state.stopping = true
  clearInterval(state.healthTimer)
  clearTimeout(state.reconnectTimer)
  if (state.connecting) await withTimeout(state.connecting, 5000, 'connection attempt').catch(() => {})
  state.connected = false
  await closeClients([...state.consumers, state.producer, state.admin])
}

// Publishes an event for one of the consumer groups. Returns { via: 'kafka', event } once the
// broker acknowledged it (acks=all), or { via: 'sync', event, result } after processing it
// in-process because Kafka is not available.
async function publish(topic, type, payload) {
  const event = newEvent(type, payload)
  if (state.connected && state.producer) {
    const { producer, generation, lost } = state
    try {
      const [meta] = await withTimeout(
        Promise.race([producer.send({ topic, acks: -1, messages: [encode(event)] }), lost]),
        cfg.sendTimeoutMs,
        'produce'
      )
      return { via: 'kafka', event, partition: meta.partition, offset: Number(meta.baseOffset) }
    } catch (e) {
      if (generation === state.generation) onLost(`produce to ${topic} failed: ${e.message}`)
    }
  }
  // Fallback: "Events are logged but not queued; processing happens synchronously."
  const p = processorFor(topic)
  log(`not connected: processing ${topic} ${event.eventId} synchronously`)
  const result = await p.handle(event, {
    via: 'sync',
    topic,
    emit: (followTopic, followPayload) => emitFollowUp(followTopic, followPayload, event),
  })
  return { via: 'sync', event, result }
}

function status() {
  return {
    connected: state.connected,
    brokers: cfg.brokers,
    clientId: cfg.clientId,
    topics: Object.values(TOPICS),
    consumers: state.connected ? Object.keys(PROCESSORS) : [],
    lastError: state.connected ? null : state.lastError,
  }
}

module.exports = { start, stop, publish, status, TOPICS }
