// Timeouts end sandboxes: a short create timeout, and a timeout shortened by setTimeout, both kill.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'

import { Sandbox, create, hostTraces, killCreated, waitFor } from './helpers.mjs'

after(killCreated)

async function gone(id) {
  try {
    await Sandbox.getInfo(id)
    return false
  } catch (err) {
    if (err.name === 'SandboxNotFoundError') return true
    throw err
  }
}

test('a sandbox created with a 3 s timeout is killed when it expires, and released on the host', async () => {
  const sandbox = await create({ timeoutMs: 3_000 })
  assert.equal((await sandbox.commands.run('echo alive')).stdout, 'alive\n')
  await waitFor('the sandbox to expire', () => gone(sandbox.sandboxId), { timeoutMs: 30_000, intervalMs: 250 })
  assert.equal(await sandbox.isRunning(), false)
  assert.equal(await Sandbox.kill(sandbox.sandboxId), false)
  await waitFor('the host to release the sandbox', async () => (await hostTraces(sandbox.sandboxId)).length === 0)
})

test('setTimeout shortening a long timeout makes the sandbox expire', async () => {
  const sandbox = await create({ timeoutMs: 300_000 })
  await sandbox.setTimeout(2_000)
  await waitFor('the sandbox to expire', () => gone(sandbox.sandboxId), { timeoutMs: 30_000, intervalMs: 250 })
  assert.equal(await sandbox.isRunning(), false)
})

test('setTimeout extending a short timeout keeps the sandbox alive past it', async () => {
  const sandbox = await create({ timeoutMs: 3_000 })
  await sandbox.setTimeout(120_000)
  await new Promise((r) => setTimeout(r, 5_000))
  assert.equal(await sandbox.isRunning(), true)
  assert.equal((await sandbox.getInfo()).state, 'running')
})
