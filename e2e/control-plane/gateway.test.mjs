// User ports through the gateway: getHost(port) with the localhost domain (`<port>-<id>.localhost:<server port>`),
// a server on all addresses and one on the sandbox's loopback only, and 502s for closed ports and unknown sandboxes.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { PORT, create, hostGet, killCreated, waitFor } from './helpers.mjs'

after(killCreated)

describe('gateway', () => {
  let sandbox
  before(async () => {
    sandbox = await create()
    await sandbox.files.write('site/index.html', '<h1>hello from the sandbox</h1>\n')
  })

  test('getHost(port) names the port, the sandbox and the server', () => {
    assert.equal(sandbox.getHost(8000), `8000-${sandbox.sandboxId}.localhost:${PORT}`)
  })

  test('reaches a Python HTTP server started in the sandbox', async () => {
    await sandbox.commands.run('python3 -m http.server 8000 --directory /home/user/site', { background: true })
    const res = await waitFor('the Python server through the gateway', async () => {
      const r = await hostGet(sandbox.getHost(8000), '/index.html')
      return r.status === 200 && r
    })
    assert.equal(res.body, '<h1>hello from the sandbox</h1>\n')
    const missing = await hostGet(sandbox.getHost(8000), '/nope')
    assert.equal(missing.status, 404)
  })

  test('reaches a server that listens on the sandbox loopback only', async () => {
    await sandbox.commands.run('python3 -m http.server 8001 --bind 127.0.0.1 --directory /home/user/site', { background: true })
    await waitFor('the loopback server to listen', async () =>
      (await sandbox.commands.run('curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8001/index.html')).stdout === '200')
    const res = await waitFor('the loopback-only server through the gateway', async () => {
      const r = await hostGet(sandbox.getHost(8001), '/index.html')
      return r.status === 200 && r
    }, { timeoutMs: 15_000 })
    assert.equal(res.body, '<h1>hello from the sandbox</h1>\n')
  })

  test('a closed port answers 502 naming the sandbox', async () => {
    const r = await hostGet(sandbox.getHost(8999))
    assert.equal(r.status, 502)
    const body = JSON.parse(r.body)
    assert.equal(body.sandboxId, sandbox.sandboxId)
    assert.ok(body.message)
  })

  test('an unknown sandbox answers 502 naming it', async () => {
    const r = await hostGet(`8000-nosuchsandbox0000000.localhost:${PORT}`)
    assert.equal(r.status, 502)
    assert.equal(JSON.parse(r.body).sandboxId, 'nosuchsandbox0000000')
  })

  test('after kill the port answers 502', async () => {
    const s = await create()
    await s.commands.run('python3 -m http.server 8000', { background: true })
    await waitFor('the server', async () => (await hostGet(s.getHost(8000))).status === 200)
    await s.kill()
    assert.equal((await hostGet(s.getHost(8000))).status, 502)
  })
})
