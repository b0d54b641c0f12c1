// Egress policies through the official SDK: allowInternetAccess, network.allowOut / denyOut / egressProxy on create,
// sandbox.updateNetwork and the raw PUT /sandboxes/{id}/network, probed from inside with curl against a stand-in
// internet in a namespace this suite makes (documentation addresses only; see stand-in-internet.sh).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'

import { ALL_TRAFFIC } from 'e2b'

import { api, create, killCreated } from './helpers.mjs'

const run = promisify(execFile)
const SCRIPT = new URL('./stand-in-internet.sh', import.meta.url).pathname
const OPEN = '198.51.100.20'
const ALLOWED = '198.51.100.10'
const BLOCKED = '203.0.113.66'
const SOCKS = '203.0.113.80:1080'

let dir
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-e2e-internet-'))
  rmdirSync(dir) // the script makes it, and refuses one that exists
  await run(SCRIPT, ['up', dir])
})
after(async () => {
  await killCreated()
  await run(SCRIPT, ['down', dir])
})

/** The stand-in's log so far: DNS queries and tunnels. */
const log = () => readFileSync(join(dir, 'log'), 'utf8').split('\n')

/** What `curl http://<address>/` printed in the sandbox, with its exit code: "hello from open host=… exit=0". */
async function get(sandbox, address) {
  const r = await sandbox.commands.run(`curl -sS -m 5 http://${address}/ 2>&1; echo " exit=$?"`)
  return r.stdout.replace(/\s+/g, ' ').trim()
}

function reached(answer, name) {
  assert.match(answer, new RegExp(`^hello from ${name} host=.* exit=0$`))
}

function blocked(answer) {
  assert.doesNotMatch(answer, /hello from/)
  assert.doesNotMatch(answer, /exit=0$/)
}

describe('egress policies from the SDK', () => {
  test('a default sandbox reaches the internet; allowInternetAccess: false reaches none of it', async () => {
    const [online, offline] = await Promise.all([create(), create({ allowInternetAccess: false })])
    reached(await get(online, OPEN), 'open')
    reached(await get(online, BLOCKED), 'blocked')
    blocked(await get(offline, OPEN))
    blocked(await get(offline, BLOCKED))
    assert.equal((await offline.getInfo()).allowInternetAccess, false)
    // root cannot undo it: no CAP_NET_ADMIN, and the rules are on the host
    const root = await offline.commands.run(`ip route replace default dev eth0 2>&1; echo exit=$?`, { user: 'root' })
    assert.match(root.stdout, /not permitted/)
    blocked(await get(offline, OPEN))
  })

  test('denyOut blocks CIDRs, an allowOut inside them wins, the rest stays open', async () => {
    const sandbox = await create({ network: { allowOut: [OPEN], denyOut: ['198.51.100.0/24'] } })
    reached(await get(sandbox, OPEN), 'open')
    blocked(await get(sandbox, ALLOWED))
    reached(await get(sandbox, BLOCKED), 'blocked')
    blocked(await get(sandbox, '169.254.169.254'))
  })

  test('updateNetwork and PUT /network change a running sandbox both ways', async () => {
    const sandbox = await create()
    reached(await get(sandbox, OPEN), 'open')

    await sandbox.updateNetwork({ denyOut: [ALL_TRAFFIC] })
    blocked(await get(sandbox, OPEN))
    blocked(await get(sandbox, BLOCKED))

    await sandbox.updateNetwork({ allowOut: [BLOCKED], denyOut: [ALL_TRAFFIC] })
    blocked(await get(sandbox, OPEN))
    reached(await get(sandbox, BLOCKED), 'blocked')

    const put = await api('PUT', `/sandboxes/${sandbox.sandboxId}/network`, { body: { denyOut: ['203.0.113.0/24'] } })
    assert.equal(put.status, 204)
    reached(await get(sandbox, OPEN), 'open')
    blocked(await get(sandbox, BLOCKED))

    await sandbox.updateNetwork({})
    reached(await get(sandbox, OPEN), 'open')
    reached(await get(sandbox, BLOCKED), 'blocked')
  })

  test('an egress proxy with credentials carries the TCP, and fails closed with wrong ones', async () => {
    const [tunnelled, refused] = await Promise.all([
      create({ network: { egressProxy: { address: SOCKS, username: 'tunnel', password: 's3cret' } } }),
      create({ network: { egressProxy: { address: SOCKS, username: 'tunnel', password: 'wrong' } } }),
    ])
    reached(await get(tunnelled, OPEN), 'open')
    assert.ok(log().includes(`socks tunnel ${OPEN}:80`), `the proxy's log: ${log().join(' | ')}`)
    const info = await tunnelled.getInfo()
    assert.equal(info.network?.egressProxy?.address, SOCKS)
    assert.equal(info.network?.egressProxy?.password, undefined)

    blocked(await get(refused, BLOCKED))
    assert.ok(log().includes('socks-denied tunnel'), `the proxy's log: ${log().join(' | ')}`)
    assert.ok(!log().includes(`socks tunnel ${BLOCKED}:80`))
  })
})
