// /kafka/* endpoints: connection status and test events for each consumer group.
const express = require('express')
const config = require('../config')
const kafka = require('../services/kafka')

const { TOPICS } = config
const router = express.Router()

// Bearer-token check for the test endpoints (skipped when API_TOKEN is not set).
function requireAuth(req, res, next) {
  if (!config.apiToken) return next()
  if (req.get('authorization') === `Bearer ${config.apiToken}`) return next()
  return res.status(401).json({ ok: false, error: 'Unauthorized' })
}

router.get('/status', (req, res) => {
  const s = kafka.status()
  res.json({
    ok: true,
    kafka: { connected: s.connected, brokers: s.brokers, clientId: s.clientId },
    topics: s.topics,
    consumers: s.consumers,
    message: s.connected
      ? 'Kafka is connected and processing events'
      : 'Kafka not connected - async processing disabled',
    ...(s.connected ? {} : { lastError: s.lastError }),
  })
})

// Publishes `payload` to `topic`; 202 when Kafka acknowledged it, 200 when Kafka is down and the
// event was processed synchronously instead.
async function send(res, topic, type, payload, what, extra = {}) {
  const r = await kafka.publish(topic, type, payload)
  if (r.via === 'kafka') {
    return res.status(202).json({
      ok: true,
      message: `${what} published to Kafka`,
      topic,
      eventId: r.event.eventId,
      via: 'kafka',
      partition: r.partition,
      offset: r.offset,
      ...extra,
    })
  }
  return res.status(200).json({
    ok: true,
    message: `Kafka not connected - ${what.toLowerCase()} processed synchronously`,
    topic,
    eventId: r.event.eventId,
    via: 'sync',
    result: r.result,
  })
}

const wrap = fn => (req, res, next) => fn(req, res).catch(next)

router.post(
  '/test/notification',
  requireAuth,
  wrap(async (req, res) => {
    const { title = 'Test Alert', body = '', channel = 'telegram' } = req.body || {}
    await send(res, TOPICS.NOTIFICATION_SEND, 'notification.send', { title, body, channel }, 'Notification event')
  })
)

router.post(
  '/test/audit',
  requireAuth,
  wrap(async (req, res) => {
    const { action, resource, resourceId = null, details = {} } = req.body || {}
    if (!action || !resource) return res.status(400).json({ ok: false, error: 'action and resource are required' })
    await send(res, TOPICS.AUDIT_EVENT, 'audit.event', { action, resource, resourceId, details }, 'Audit event')
  })
)

router.post(
  '/test/report',
  requireAuth,
  wrap(async (req, res) => {
    const { reportType = 'weekly' } = req.body || {}
    await send(res, TOPICS.REPORT_GENERATE, 'report.generate', { reportType }, 'Report generation request', {
      note: 'Report will be generated async and sent to Telegram',
    })
  })
)

// Stand-in for POST /upload: "API saves file, publishes event" for the document processor.
router.post(
  '/test/document',
  requireAuth,
  wrap(async (req, res) => {
    const { filename = 'document.txt', text = '' } = req.body || {}
    const documentId = (req.body && req.body.documentId) || `doc-${Date.now()}`
    await send(res, TOPICS.DOCUMENT_UPLOADED, 'document.uploaded', { documentId, filename, text }, 'Document upload event')
  })
)

module.exports = router
