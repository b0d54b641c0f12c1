// Webhooks with a real receiver (an HTTP server in this process): every lifecycle event of create → pause →
// resume → kill arrives in order with a valid e2b-signature; with the receiver down and the server restarted in
// between, every event still arrives (at least once; a repeat carries the same e2b-delivery-id and body). Sorts
// last: it restarts the shared server.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import { after, test } from 'node:test'

import { Sandbox, api, create, killCreated, restartServer, waitFor } from './helpers.mjs'

const SECRET = 'whsec-test-0123456789'
const TYPES = ['sandbox.lifecycle.created', 'sandbox.lifecycle.updated', 'sandbox.lifecycle.paused',
  'sandbox.lifecycle.resumed', 'sandbox.lifecycle.checkpointed', 'sandbox.lifecycle.killed']
const hooks = []

after(async () => {
  await killCreated()
  for (const id of hooks) await api('DELETE', `/events/webhooks/${id}`)
})

/** A receiver on 127.0.0.1 that keeps every delivery (headers and raw body) and answers 200. */
function receiver(port = 0) {
  const got = []
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      res.writeHead(200).end()
    })
  })
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({
    got,
    port: server.address().port,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections() }),
  })))
}

async function webhook(port) {
  const r = await api('POST', '/events/webhooks', {
    body: { name: 'e2e', url: `http://127.0.0.1:${port}/hook`, enabled: true, events: TYPES, signatureSecret: SECRET },
  })
  assert.equal(r.status, 201, JSON.stringify(r.json))
  assert.ok(!JSON.stringify(r.json).includes(SECRET), 'the secret is never returned')
  hooks.push(r.json.id)
  return r.json.id
}

function signed(delivery) {
  const expected = createHash('sha256').update(SECRET + delivery.body).digest('base64url')
  return delivery.headers['e2b-signature'] === expected && delivery.headers['e2b-signature-version'] === 'v1'
}

async function createPauseResumeKill() {
  const sandbox = await create()
  assert.equal(await sandbox.pause(), true)
  await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
  await sandbox.kill()
  return sandbox.sandboxId
}

const ORDER = ['sandbox.lifecycle.created', 'sandbox.lifecycle.paused', 'sandbox.lifecycle.resumed', 'sandbox.lifecycle.killed']

test('a receiver gets every lifecycle event in order with valid signatures', async () => {
  const rx = await receiver()
  try {
    const hook = await webhook(rx.port)
    const id = await createPauseResumeKill()
    const mine = () => rx.got.filter((d) => JSON.parse(d.body).sandboxId === id)
    await waitFor('four deliveries', () => mine().length >= 4, { timeoutMs: 30_000 })
    const deliveries = mine()
    assert.deepEqual(deliveries.map((d) => JSON.parse(d.body).type), ORDER)
    for (const d of deliveries) {
      assert.ok(signed(d), `signature of ${d.body}`)
      assert.equal(d.headers['e2b-webhook-id'], hook)
      assert.ok(d.headers['e2b-delivery-id'])
      assert.equal(JSON.parse(d.body).version, 'v1')
    }
    assert.equal(new Set(deliveries.map((d) => d.headers['e2b-delivery-id'])).size, 4)
    const log = await api('GET', `/events/webhooks/${hook}/deliveries`)
    assert.equal(log.status, 200)
    assert.ok(log.json.filter((d) => d.status === 'delivered').length >= 4)
    await api('DELETE', `/events/webhooks/${hook}`)
  } finally {
    await rx.close()
  }
})

test('with the receiver down and the server restarted, every event still arrives, repeats with the same delivery id', async () => {
  const first = await receiver()
  const port = first.port
  await webhook(port)
  await first.close() // down: every attempt is refused from now on
  const id = await createPauseResumeKill()
  await restartServer()
  const rx = await receiver(port) // back, on the same address
  try {
    const mine = () => rx.got.filter((d) => JSON.parse(d.body).sandboxId === id)
    await waitFor('every event after the restart', () => ORDER.every((t) => mine().some((d) => JSON.parse(d.body).type === t)),
      { timeoutMs: 180_000, intervalMs: 250 })
    const deliveries = mine()
    const firstOfEach = ORDER.map((t) => deliveries.findIndex((d) => JSON.parse(d.body).type === t))
    assert.deepEqual([...firstOfEach].sort((a, b) => a - b), firstOfEach, 'first arrivals in order')
    const byDelivery = new Map()
    for (const d of deliveries) {
      assert.ok(signed(d))
      const did = d.headers['e2b-delivery-id']
      if (byDelivery.has(did)) assert.equal(byDelivery.get(did), d.body, 'a repeat is the same delivery')
      byDelivery.set(did, d.body)
    }
    assert.equal(byDelivery.size, 4, 'one delivery id per event')
  } finally {
    await rx.close()
  }
})
