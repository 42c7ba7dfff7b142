// Configuration of the Paka API's Kafka integration, from the environment.
const int = (name, fallback) => {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number.parseInt(v, 10)
  if (!Number.isFinite(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`)
  return n
}

const TOPICS = {
  DOCUMENT_UPLOADED: 'document.uploaded', // new document needs processing -> document-processor
  DOCUMENT_PARSED: 'document.parsed', // document parsed into chunks
  DOCUMENT_EMBEDDED: 'document.embedded', // embeddings generated
  NOTIFICATION_SEND: 'notification.send', // send notification -> notification-processor
  NOTIFICATION_SENT: 'notification.sent', // notification delivered
  AUDIT_EVENT: 'audit.event', // log user action -> audit-logger
  REPORT_GENERATE: 'report.generate', // generate report async -> report-generator
  REPORT_READY: 'report.ready', // report completed
}

const CONSUMER_GROUPS = {
  DOCUMENT_PROCESSOR: 'paka-document-processor',
  NOTIFICATION_PROCESSOR: 'paka-notification-processor',
  AUDIT_LOGGER: 'paka-audit-logger',
  REPORT_GENERATOR: 'paka-report-generator',
}

module.exports = {
  port: int('PORT', 3000),
  // Bearer token the /kafka/test/* endpoints require; unset = no authentication (local runs).
  apiToken: process.env.API_TOKEN || '',
  kafka: {
    brokers: process.env.KAFKA_BROKERS || 'localhost:9092',
    clientId: process.env.KAFKA_CLIENT_ID || 'paka-api',
    logLevel: (process.env.KAFKA_LOG_LEVEL || 'warn').toUpperCase(),
    partitions: int('KAFKA_TOPIC_PARTITIONS', 3),
    replicationFactor: int('KAFKA_REPLICATION_FACTOR', 1),
    // How often a connected service checks the broker, and how long it waits between
    // reconnection attempts while the broker is away.
    healthCheckMs: int('KAFKA_HEALTH_CHECK_MS', 2000),
    reconnectMs: int('KAFKA_RECONNECT_MS', 2000),
    sendTimeoutMs: int('KAFKA_SEND_TIMEOUT_MS', 5000),
    sessionTimeoutMs: int('KAFKA_SESSION_TIMEOUT_MS', 10000),
    heartbeatIntervalMs: int('KAFKA_HEARTBEAT_INTERVAL_MS', 3000),
  },
  // JSON lines, one per event a processor handled (unset: processors only log to stdout).
  processedLog: process.env.PROCESSED_LOG || '',
  TOPICS,
  CONSUMER_GROUPS,
}
