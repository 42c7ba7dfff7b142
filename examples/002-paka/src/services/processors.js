// The four event processors. Each one runs as a Kafka consumer group member when the broker is
// up, and is called in-process (synchronously, inside the HTTP request) when it is not.
//
// A processor gets the event and a context:
//   ctx.via     'kafka' or 'sync'
//   ctx.emit    publishes a follow-up event (document.embedded, notification.sent, report.ready);
//               in sync mode follow-ups are logged, not queued (see "Fallback Behavior").
// Every handled event is recorded (stdout, and PROCESSED_LOG as JSON lines if set).
const fs = require('fs')
const crypto = require('crypto')
const config = require('../config')

const { TOPICS, CONSUMER_GROUPS } = config

// "Database" of the audit logger: the last audit entries, newest last.
const auditTrail = []

function record(group, event, ctx, result) {
  const line = {
    at: new Date().toISOString(),
    group,
    topic: ctx.topic,
    eventId: event.eventId,
    via: ctx.via,
    partition: ctx.partition === undefined ? null : ctx.partition,
    offset: ctx.offset === undefined ? null : ctx.offset,
    result,
  }
  console.log(`[${group}] ${ctx.via} ${ctx.topic} ${event.eventId} ${JSON.stringify(result)}`)
  if (config.processedLog) fs.appendFileSync(config.processedLog, JSON.stringify(line) + '\n')
}

// Document processor: parse into chunks, "embed" each chunk (a stand-in for the embedding
// model: a deterministic 8-dimensional vector from a hash of the text).
async function processDocument(event, ctx) {
  const text = String(event.payload.text || '')
  const chunks = text
    .split(/\n\s*\n/)
    .map(s => s.trim())
    .filter(Boolean)
  await ctx.emit(TOPICS.DOCUMENT_PARSED, { documentId: event.payload.documentId, chunks: chunks.length })
  const vectors = chunks.map(chunk => {
    const h = crypto.createHash('sha256').update(chunk).digest()
    return Array.from({ length: 8 }, (_, i) => (h[i] - 128) / 128)
  })
  await ctx.emit(TOPICS.DOCUMENT_EMBEDDED, {
    documentId: event.payload.documentId,
    chunks: chunks.length,
    dimensions: 8,
  })
  const result = { documentId: event.payload.documentId, chunks: chunks.length, vectors: vectors.length }
  record(CONSUMER_GROUPS.DOCUMENT_PROCESSOR, event, ctx, result)
  return result
}

// Notification processor: deliver (Telegram / email in production; logged here).
async function processNotification(event, ctx) {
  const { title = '', body = '', channel = 'telegram' } = event.payload
  const deliveredAt = new Date().toISOString()
  await ctx.emit(TOPICS.NOTIFICATION_SENT, { notificationId: event.eventId, channel, deliveredAt })
  const result = { channel, title, delivered: true }
  record(CONSUMER_GROUPS.NOTIFICATION_PROCESSOR, event, ctx, { ...result, bodyLength: body.length })
  return result
}

// Audit logger: store the user action.
async function processAudit(event, ctx) {
  const { action, resource, resourceId = null, details = {} } = event.payload
  auditTrail.push({ eventId: event.eventId, at: event.occurredAt, action, resource, resourceId, details })
  if (auditTrail.length > 1000) auditTrail.shift()
  const result = { action, resource, resourceId, stored: true }
  record(CONSUMER_GROUPS.AUDIT_LOGGER, event, ctx, result)
  return result
}

// Report generator: summarise the audit trail, announce the report on report.ready.
async function processReport(event, ctx) {
  const reportType = event.payload.reportType || 'weekly'
  const byAction = {}
  for (const entry of auditTrail) byAction[entry.action] = (byAction[entry.action] || 0) + 1
  const report = { reportId: event.eventId, reportType, auditEntries: auditTrail.length, byAction }
  await ctx.emit(TOPICS.REPORT_READY, report)
  const result = { reportType, auditEntries: auditTrail.length }
  record(CONSUMER_GROUPS.REPORT_GENERATOR, event, ctx, result)
  return result
}

// group id -> the topic it consumes and its handler
const PROCESSORS = {
  [CONSUMER_GROUPS.DOCUMENT_PROCESSOR]: { topic: TOPICS.DOCUMENT_UPLOADED, handle: processDocument },
  [CONSUMER_GROUPS.NOTIFICATION_PROCESSOR]: { topic: TOPICS.NOTIFICATION_SEND, handle: processNotification },
  [CONSUMER_GROUPS.AUDIT_LOGGER]: { topic: TOPICS.AUDIT_EVENT, handle: processAudit },
  [CONSUMER_GROUPS.REPORT_GENERATOR]: { topic: TOPICS.REPORT_GENERATE, handle: processReport },
}

function processorFor(topic) {
  for (const [groupId, p] of Object.entries(PROCESSORS)) if (p.topic === topic) return { groupId, ...p }
  return null
}

module.exports = { PROCESSORS, processorFor }
