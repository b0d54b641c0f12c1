// Restart safety: stop the server by pid, start it again on the same data directory: running sandboxes still run,
// are reachable through the gateway, and their timeouts still apply. Runs last (it restarts the shared server).
import assert from 'node:assert/strict'
import { after, test } from 'node:test'

import { Sandbox, create, hostGet, hostTraces, killCreated, restartServer, waitFor } from './helpers.mjs'

after(killCreated)

test('sandboxes survive a server restart, stay reachable and still expire', async () => {
  const keeper = await create({ timeoutMs: 600_000, metadata: { role: 'keeper' }, envs: { KEPT: 'yes' } })
  const expiring = await create({ timeoutMs: 45_000 })
  await keeper.files.write('before-restart.txt', 'still here')
  await keeper.commands.run('python3 -m http.server 8000', { background: true })
  await waitFor('the user server', async () => (await hostGet(keeper.getHost(8000))).status === 200)
  const infoBefore = await keeper.getInfo()
  const expiringEnd = (await expiring.getInfo()).endAt

  await restartServer()

  const info = await keeper.getInfo()
  assert.equal(info.state, 'running')
  assert.deepEqual(info.metadata, { role: 'keeper' })
  assert.equal(info.endAt.getTime(), infoBefore.endAt.getTime())
  assert.equal(await keeper.files.read('before-restart.txt'), 'still here')
  assert.equal((await keeper.commands.run('echo $KEPT')).stdout, 'yes\n')
  assert.equal((await hostGet(keeper.getHost(8000))).status, 200, 'the user server is reachable after the restart')
  const again = await Sandbox.connect(keeper.sandboxId)
  assert.equal((await again.commands.run('cat before-restart.txt')).stdout, 'still here')

  assert.equal((await expiring.getInfo()).endAt.getTime(), expiringEnd.getTime())
  await waitFor('the expiring sandbox to be killed after the restart', async () => {
    try {
      await Sandbox.getInfo(expiring.sandboxId)
      return false
    } catch (err) {
      return err.name === 'SandboxNotFoundError'
    }
  }, { timeoutMs: 90_000, intervalMs: 500 })
  await waitFor('the host to release it', async () => (await hostTraces(expiring.sandboxId)).length === 0)
  assert.equal(await keeper.isRunning(), true)
  assert.equal(await keeper.kill(), true)
})

test('a paused sandbox survives a server restart as paused and resumes afterwards', async () => {
  const sandbox = await create({ timeoutMs: 600_000 })
  await sandbox.files.write('paused-over-restart.txt', 'kept')
  await sandbox.commands.run('python3 -m http.server 8001', { background: true })
  await waitFor('the user server', async () => (await hostGet(sandbox.getHost(8001))).status === 200)
  assert.equal(await sandbox.pause(), true)

  await restartServer()

  assert.equal((await Sandbox.getInfo(sandbox.sandboxId)).state, 'paused')
  assert.equal(await sandbox.isRunning(), false)
  const resumed = await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
  assert.equal(await resumed.files.read('paused-over-restart.txt'), 'kept')
  assert.equal((await hostGet(resumed.getHost(8001))).status, 200, 'the process started before the pause still serves')
  assert.equal(await resumed.kill(), true)
})
