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

/**
 * Rounds of: write a fresh file in each sandbox, fire their pauses staggered so that the SIGKILL lands 0 to 400 ms
 * into them (before, during and after the freeze or stop), kill the server, start it again, and check each one.
 */
const ROUNDS = [
  { keepMemory: true, gapsMs: [0, 5, 15, 150] },
  { keepMemory: true, gapsMs: [2, 10, 30, 400] },
  { keepMemory: false, gapsMs: [0, 20, 60, 400] },
]

test('SIGKILL in the middle of pauses: every sandbox comes back running or paused, with its files intact', async (t) => {
  const sandboxes = []
  for (let i = 0; i < 4; i++) sandboxes.push(await create({ timeoutMs: 600_000 }))
  for (const { keepMemory, gapsMs } of ROUNDS) {
    const contents = new Map()
    for (const s of sandboxes) {
      contents.set(s.sandboxId, randomBytes(32).toString('hex'))
      await s.files.write('crash.txt', contents.get(s.sandboxId))
    }
    // fire the pauses so that the kill lands gapsMs[i] ms into sandbox i's pause: longest first
    const plan = sandboxes.map((s, i) => ({ s, intoMs: gapsMs[i] })).sort((a, b) => b.intoMs - a.intoMs)
    const pausing = []
    for (let i = 0; i < plan.length; i++) {
      pausing.push(api('POST', `/sandboxes/${plan[i].s.sandboxId}/pause`, { body: { memory: keepMemory } }).catch((e) => e))
      await sleep(plan[i].intoMs - (plan[i + 1]?.intoMs ?? 0))
    }
    killServer()
    await Promise.all(pausing)
    await crashServer()

    const states = []
    for (const s of sandboxes) {
      const state = (await info(s.sandboxId)).state
      states.push(state)
      const what = `sandbox ${s.sandboxId} (memory ${keepMemory}, gaps ${gapsMs}) was ${state} after the crash`
      assert.ok(state === 'running' || state === 'paused', what)
      await Sandbox.connect(s.sandboxId, { timeoutMs: 600_000 })
      assert.equal((await info(s.sandboxId)).state, 'running', what)
      const read = await s.commands.run('cat /home/user/crash.txt', { timeoutMs: 30_000 })
      assert.equal(read.stdout, contents.get(s.sandboxId), `files intact: ${what}`)
    }
    t.diagnostic(`memory ${keepMemory}, killed ${gapsMs.join('/')} ms into the pauses: ${states.join(', ')} after the restart`)
  }
  // and they pause and resume normally afterwards
  for (const s of sandboxes) {
    assert.equal(await s.pause(), true)
    await Sandbox.connect(s.sandboxId, { timeoutMs: 120_000 })
    assert.equal((await s.commands.run('echo alive')).stdout, 'alive\n')
    assert.equal(await s.kill(), true)
  }
})

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
