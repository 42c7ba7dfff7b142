// Paka API (the Kafka part): an Express app whose events go through Kafka when it is available
// and are processed synchronously when it is not.
const express = require('express')
const config = require('./config')
const kafka = require('./services/kafka')
const kafkaRoutes = require('./routes/kafka')

const app = express()
app.use(express.json({ limit: '1mb' }))
app.get('/health', (req, res) => res.json({ ok: true }))
app.use('/kafka', kafkaRoutes)
app.use((err, req, res, next) => {
  console.error('[api] error:', err)
  res.status(err.status || 500).json({ ok: false, error: err.message })
})

const server = app.listen(config.port, () => {
  console.log(`[api] Paka API listening on http://localhost:${server.address().port}`)
  console.log(`[api] Kafka brokers: ${config.kafka.brokers} (client id ${config.kafka.clientId})`)
})

// Connecting does not block the HTTP server: until Kafka is up, events are processed in-process.
kafka.start()

let shuttingDown = false
async function shutdown(signal) {
  if (shuttingDown) return
  shuttingDown = true
  console.log(`[api] ${signal}: shutting down`)
  server.close()
  await kafka.stop().catch(e => console.error('[api] error while disconnecting from Kafka:', e))
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
