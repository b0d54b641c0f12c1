// Pause and resume with the official SDK against a real server (oci driver: the cgroup is frozen, memory kept):
// files, env vars and running processes survive; connect resumes; auto-pause at the timeout; auto-resume through
// the gateway; the gateway answers 502 (isRunning() false) for a paused sandbox without auto-resume; list by
// state; kill of a paused sandbox; pause without memory (files kept, processes not, cold boot on resume). The
// restart of a server with a paused sandbox is in zz-restart.test.mjs, crashes and host reboots in zz-crash.test.mjs.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'

import { HOME, RUN, Sandbox, api, create, hostGet, hostTraces, killCreated, waitFor } from './helpers.mjs'

after(killCreated)

/** A Python server on port 8000 whose count lives only in its memory, ticking every 20 ms. */
const COUNTER = `
import http.server, threading, time
count = 0
def tick():
    global count
    while True:
        count += 1
        time.sleep(0.02)
threading.Thread(target=tick, daemon=True).start()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(count).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('0.0.0.0', 8000), Handler).serve_forever()
`

async function startCounter(sandbox) {
  await sandbox.files.write('counter.py', COUNTER)
  const handle = await sandbox.commands.run(`python3 ${HOME}/counter.py`, { background: true })
  await waitFor('the counter server', async () => (await hostGet(sandbox.getHost(8000))).status === 200)
  return handle.pid
}

async function count(sandbox) {
  const res = await hostGet(sandbox.getHost(8000))
  assert.equal(res.status, 200, res.body)
  return Number(res.body)
}

test('files, env vars and a counting process survive pause and resume; connect resumes', async () => {
  const sandbox = await create({ envs: { BEFORE: 'pause' } })
  await sandbox.files.write('before.txt', 'written before the pause')
  await sandbox.commands.run('echo exported-value > /home/user/env.txt')
  const pid = await startCounter(sandbox)
  await waitFor('the count to grow', async () => (await count(sandbox)) > 10)
  const before = await count(sandbox)

  assert.equal(await sandbox.pause(), true)
  const counted = await Sandbox.getInfo(sandbox.sandboxId)
  assert.equal(counted.state, 'paused')
  assert.equal(await sandbox.isRunning(), false, 'the gateway answers 502 for a paused sandbox')
  assert.equal((await hostGet(sandbox.getHost(8000))).status, 502)
  assert.equal(await sandbox.pause(), false, 'a second pause is refused with 409')
  assert.equal(await Sandbox.pause(sandbox.sandboxId), false)

  const resumed = await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
  assert.equal((await resumed.getInfo()).state, 'running')
  assert.equal(await resumed.isRunning(), true)
  const after = await count(resumed)
  assert.ok(after >= before, `the count continues from ${before}, not from zero (got ${after})`)
  await waitFor('the count to keep growing', async () => (await count(resumed)) > after)
  assert.equal(await resumed.files.read('before.txt'), 'written before the pause')
  assert.equal((await resumed.commands.run('echo $BEFORE')).stdout, 'pause\n')
  assert.equal((await resumed.commands.run('cat /home/user/env.txt')).stdout, 'exported-value\n')
  const processes = await resumed.commands.list()
  assert.ok(processes.some((p) => p.pid === pid), 'the counter is the same process, not a new one')

  // connecting to a running sandbox leaves it running (200)
  const again = await Sandbox.connect(sandbox.sandboxId)
  assert.equal(await again.isRunning(), true)
})

test('auto-pause at the timeout, then Sandbox.connect resumes it', async () => {
  const sandbox = await create({ timeoutMs: 3_000, lifecycle: { onTimeout: 'pause' } })
  await sandbox.files.write('kept.txt', 'auto-paused')
  await waitFor('the timeout to pause it', async () => (await Sandbox.getInfo(sandbox.sandboxId)).state === 'paused',
    { timeoutMs: 60_000, intervalMs: 250 })
  const info = await Sandbox.getInfo(sandbox.sandboxId)
  assert.equal(info.lifecycle?.onTimeout ?? 'pause', 'pause')
  assert.equal(await sandbox.isRunning(), false)

  const resumed = await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
  assert.equal(await resumed.files.read('kept.txt'), 'auto-paused')
  assert.equal((await resumed.getInfo()).state, 'running')
})

test('auto-resume: traffic through the gateway wakes a paused sandbox and the request succeeds', async () => {
  const sandbox = await create({ lifecycle: { onTimeout: 'pause', autoResume: true } })
  await startCounter(sandbox)
  assert.equal(await sandbox.pause(), true)
  assert.equal((await Sandbox.getInfo(sandbox.sandboxId)).state, 'paused')

  const res = await hostGet(sandbox.getHost(8000), '/', { timeoutMs: 30_000 })
  assert.equal(res.status, 200, res.body)
  assert.ok(Number(res.body) > 0)
  assert.equal((await Sandbox.getInfo(sandbox.sandboxId)).state, 'running')
})

test('list by state, and kill of a paused sandbox', async () => {
  const meta = { run: RUN, suite: 'persistence' }
  const running = await create({ metadata: meta })
  const paused = await create({ metadata: meta })
  assert.equal(await paused.pause(), true)

  const list = async (state) => {
    const paginator = Sandbox.list({ query: { metadata: meta, state } })
    const items = []
    while (paginator.hasNext) items.push(...(await paginator.nextItems()))
    return items.map((s) => s.sandboxId).sort()
  }
  assert.deepEqual(await list(['paused']), [paused.sandboxId])
  assert.deepEqual(await list(['running']), [running.sandboxId])
  assert.deepEqual(await list(['running', 'paused']), [running.sandboxId, paused.sandboxId].sort())

  assert.equal(await Sandbox.kill(paused.sandboxId), true)
  assert.equal((await api('GET', `/sandboxes/${paused.sandboxId}`)).status, 404)
  await waitFor('the host to release it', async () => (await hostTraces(paused.sandboxId)).length === 0)
  assert.equal(await Sandbox.kill(paused.sandboxId), false)
})

test('pause without memory keeps the files, not the processes; connect cold-boots it and says memory was not kept', async () => {
  const sandbox = await create({ envs: { KEPT_ENV: 'yes' } })
  await sandbox.files.write('fs-only.txt', 'on disk')
  await startCounter(sandbox)
  assert.equal(await sandbox.pause({ keepMemory: false }), true)
  const paused = await api('GET', `/sandboxes/${sandbox.sandboxId}`)
  assert.equal(paused.json.state, 'paused')
  assert.equal(paused.json.memoryKept, false)
  assert.equal(await sandbox.isRunning(), false)
  assert.equal(await sandbox.pause({ keepMemory: false }), false, 'already paused: 409')

  const resumed = await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
  const info = await api('GET', `/sandboxes/${sandbox.sandboxId}`)
  assert.equal(info.json.state, 'running')
  assert.equal(info.json.memoryKept, false, 'getInfo says the memory was not kept')
  assert.equal(await resumed.isRunning(), true)
  assert.equal(await resumed.files.read('fs-only.txt'), 'on disk')
  assert.equal((await resumed.commands.run('echo $KEPT_ENV')).stdout, 'yes\n', 'envd got its env vars again')
  const processes = await resumed.commands.list()
  assert.ok(!processes.some((p) => p.cmd === 'python3' || p.args?.some((a) => a.endsWith('counter.py'))),
    'the counter did not survive: the sandbox was cold-booted')
  assert.equal((await hostGet(resumed.getHost(8000))).status, 502, 'nothing listens on 8000 any more')

  // and a pause with memory after that keeps memory again
  await startCounter(resumed)
  assert.equal(await resumed.pause(), true)
  await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000 })
  assert.equal((await api('GET', `/sandboxes/${sandbox.sandboxId}`)).json.memoryKept, true)
  assert.equal((await hostGet(resumed.getHost(8000))).status, 200)
})

test("connect with onResume: 'reboot' cold-boots a sandbox paused with its memory", async () => {
  const sandbox = await create()
  await sandbox.files.write('reboot.txt', 'kept')
  await startCounter(sandbox)
  assert.equal(await sandbox.pause(), true)
  const rebooted = await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 120_000, onResume: 'reboot' })
  assert.equal((await api('GET', `/sandboxes/${sandbox.sandboxId}`)).json.memoryKept, false)
  assert.equal(await rebooted.files.read('reboot.txt'), 'kept')
  assert.equal((await hostGet(rebooted.getHost(8000))).status, 502, 'the counter was not kept')
  assert.equal((await rebooted.commands.run('echo ok')).stdout, 'ok\n')
})

test('pause and resume errors: 404 for unknown, 409 for resume of a running one; the deprecated resume', async () => {
  assert.equal((await api('POST', '/sandboxes/nosuchsandbox0000001/pause', { body: {} })).status, 404)
  const sandbox = await create()
  const resume = await api('POST', `/sandboxes/${sandbox.sandboxId}/resume`, { body: { timeout: 60 } })
  assert.equal(resume.status, 409)
  assert.equal(await sandbox.pause(), true)
  const deprecated = await api('POST', `/sandboxes/${sandbox.sandboxId}/resume`, { body: { timeout: 60 } })
  assert.equal(deprecated.status, 201)
  assert.equal(deprecated.json.sandboxID, sandbox.sandboxId)
  assert.equal(await sandbox.isRunning(), true)
  const health = await fetch(`${process.env.E2B_API_URL}/health`)
  assert.equal(health.headers.get('capsule-pause-mode'), 'freeze')
  const details = await (await fetch(`${process.env.E2B_API_URL}/health/details`)).json()
  assert.equal(details.pauseMode, 'freeze')
  assert.match(details.pauseModeReason, /\w/)
})
