// Crashes, with the official SDK against a real server: the server killed with SIGKILL in the middle of a pause,
// and a simulated host reboot (every process, runc container, mount and network namespace of the server's
// sandboxes gone; their files kept). Afterwards every sandbox is running or paused — never gone, never half-frozen
// — with its files intact, and after a reboot it reports that its memory was not kept. Runs last with
// zz-restart.test.mjs: it restarts the shared server.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'

import { DATA_DIR, Sandbox, api, crashServer, create, hostGet, killCreated, rebootHost, sleep, waitFor } from './helpers.mjs'

after(killCreated)

/** SIGKILL to the server this suite runs against (pid from the harness's state file), without waiting for it. */
function killServer() {
  const pid = Number(readFileSync(join(DATA_DIR, '..', 'pid'), 'utf8'))
  process.kill(pid, 'SIGKILL')
}

async function info(id) {
  const res = await api('GET', `/sandboxes/${id}`)
  assert.equal(res.status, 200, `sandbox ${id} must still exist: ${JSON.stringify(res.json)}`)
  return res.json
}

for (const keepMemory of [true, false]) {
  test(`SIGKILL in the middle of a pause (memory ${keepMemory ? 'kept' : 'not kept'}): running or paused, files intact`, async () => {
    const delays = keepMemory ? [0, 2, 5, 10, 25] : [5, 40]
    for (const delayMs of delays) {
      const sandbox = await create({ timeoutMs: 600_000 })
      const content = randomBytes(32).toString('hex')
      await sandbox.files.write('crash.txt', content)
      const pausing = api('POST', `/sandboxes/${sandbox.sandboxId}/pause`, { body: { memory: keepMemory } }).catch((e) => e)
      await sleep(delayMs)
      killServer()
      await pausing
      await crashServer()

      const state = (await info(sandbox.sandboxId)).state
      assert.ok(state === 'running' || state === 'paused', `after a kill ${delayMs} ms into the pause: ${state}`)
      const connected = await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
      assert.equal((await info(sandbox.sandboxId)).state, 'running')
      const read = await connected.commands.run('cat /home/user/crash.txt', { timeoutMs: 30_000 })
      assert.equal(read.stdout, content, `files intact after a kill ${delayMs} ms into the pause (was ${state})`)
      assert.equal(await connected.pause({ keepMemory }), true, 'and it pauses and resumes normally afterwards')
      await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
      assert.equal((await connected.commands.run('echo alive')).stdout, 'alive\n')
      assert.equal(await connected.kill(), true)
    }
  })
}

test('after a host reboot running and paused sandboxes come back from their files, their memory not kept', async () => {
  const running = await create({ timeoutMs: 600_000, envs: { AFTER: 'reboot' } })
  const paused = await create({ timeoutMs: 600_000 })
  const stopped = await create({ timeoutMs: 600_000 })
  for (const s of [running, paused, stopped]) await s.files.write('reboot.txt', `file of ${s.sandboxId}`)
  await running.commands.run('python3 -m http.server 8000', { background: true })
  await waitFor('the user server', async () => (await hostGet(running.getHost(8000))).status === 200)
  const runningEnd = (await info(running.sandboxId)).endAt
  assert.equal(await paused.pause(), true)
  assert.equal(await stopped.pause({ keepMemory: false }), true)

  await rebootHost()

  const r = await info(running.sandboxId)
  assert.equal(r.state, 'running', 'a running sandbox is cold-booted back to running')
  assert.equal(r.memoryKept, false)
  assert.equal(r.endAt, runningEnd, 'its timeout still applies')
  assert.equal(await running.isRunning(), true)
  assert.equal(await running.files.read('reboot.txt'), `file of ${running.sandboxId}`)
  assert.equal((await running.commands.run('echo $AFTER')).stdout, 'reboot\n')
  assert.equal((await hostGet(running.getHost(8000))).status, 502, 'its processes started afresh')

  for (const s of [paused, stopped]) {
    const p = await info(s.sandboxId)
    assert.equal(p.state, 'paused')
    assert.equal(p.memoryKept, false)
    assert.equal(await s.isRunning(), false)
    const resumed = await Sandbox.connect(s.sandboxId, { timeoutMs: 120_000 })
    assert.equal(await resumed.files.read('reboot.txt'), `file of ${s.sandboxId}`)
    assert.equal((await info(s.sandboxId)).memoryKept, false)
  }
  for (const s of [running, paused, stopped]) assert.equal(await s.kill(), true)
})
