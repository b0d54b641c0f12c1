// 20 creates and kills at once: every create either succeeds or fails cleanly, every kill releases everything,
// and the store keeps no row for them.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { RUN, Sandbox, api, hostTraces, waitFor } from './helpers.mjs'

test('20 concurrent creates then 20 concurrent kills leave no rows and nothing on the host', async () => {
  const tag = `${RUN}-burst`
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) =>
    Sandbox.create('base', { timeoutMs: 120_000, metadata: { run: tag, i: String(i) } })))
  const sandboxes = results.filter((r) => r.status === 'fulfilled').map((r) => r.value)
  const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message)
  assert.deepEqual(failures, [], 'every create succeeds')
  const listed = (await api('GET', `/v2/sandboxes?limit=100&metadata=${encodeURIComponent(`run=${tag}`)}`)).json
  assert.equal(listed.length, 20)

  // Each one works before it is killed.
  const outs = await Promise.all(sandboxes.map((s) => s.commands.run('echo $((6*7))')))
  assert.deepEqual(outs.map((o) => o.stdout), Array(20).fill('42\n'))

  const kills = await Promise.all(sandboxes.map((s) => s.kill()))
  assert.deepEqual(kills, Array(20).fill(true))

  const after = await api('GET', `/v2/sandboxes?limit=100&metadata=${encodeURIComponent(`run=${tag}`)}`)
  assert.deepEqual(after.json, [])
  for (const s of sandboxes) {
    assert.equal((await api('GET', `/sandboxes/${s.sandboxId}`)).status, 404)
    await waitFor(`the host to release ${s.sandboxId}`, async () => (await hostTraces(s.sandboxId)).length === 0)
  }
})

test('creates and kills racing each other leave no rows and nothing on the host', async () => {
  const tag = `${RUN}-race`
  // Kill each sandbox as soon as its create returns, while the others are still being created.
  const ids = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const r = await api('POST', '/v2/sandboxes', { body: { templateID: 'base', timeout: 120, metadata: { run: tag, i: String(i) } } })
    assert.equal(r.status, 201, JSON.stringify(r.json))
    const k = await api('DELETE', `/sandboxes/${r.json.sandboxID}`)
    assert.equal(k.status, 204)
    return r.json.sandboxID
  }))
  assert.equal(new Set(ids).size, 20)
  assert.deepEqual((await api('GET', `/v2/sandboxes?limit=100&metadata=${encodeURIComponent(`run=${tag}`)}`)).json, [])
  for (const id of ids) {
    await waitFor(`the host to release ${id}`, async () => (await hostTraces(id)).length === 0)
  }
})
