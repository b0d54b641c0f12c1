// A sandbox's life through the official SDK against the server: create with metadata and envs, commands and files
// as `user`, getInfo, connect, setTimeout, kill.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { HOME, RUN, Sandbox, api, create, killCreated } from './helpers.mjs'

after(killCreated)

describe('a created sandbox', () => {
  let sandbox
  const metadata = { suite: 'sandbox', run: RUN, 'odd key': 'v=1&x' }
  before(async () => {
    sandbox = await create({ metadata, envs: { GREETING: 'hello from envs', RUN_ID: RUN } })
  })

  test('has an E2B-style id', () => {
    assert.match(sandbox.sandboxId, /^[a-z0-9]{20}$/)
  })

  test('runs commands as user in /home/user with the create envs', async () => {
    const r = await sandbox.commands.run('echo "$GREETING|$RUN_ID|$(whoami)|$(pwd)|$HOME"')
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout.trim(), `hello from envs|${RUN}|user|${HOME}|${HOME}`)
  })

  test('runs commands as root when asked, and reports failures', async () => {
    assert.equal((await sandbox.commands.run('id -u', { user: 'root' })).stdout.trim(), '0')
    await assert.rejects(sandbox.commands.run('exit 3'), (err) => err.exitCode === 3)
  })

  test('writes, reads and lists files', async () => {
    await sandbox.files.write('notes/hello.txt', 'hi there\n')
    assert.equal(await sandbox.files.read(`${HOME}/notes/hello.txt`), 'hi there\n')
    const entries = await sandbox.files.list('notes')
    assert.deepEqual(entries.map((e) => e.name), ['hello.txt'])
    const owner = await sandbox.commands.run(`stat -c %U ${HOME}/notes/hello.txt`)
    assert.equal(owner.stdout.trim(), 'user')
    assert.equal(await sandbox.files.exists('notes/missing'), false)
  })

  test('getInfo reports state, metadata, times, resources and envd version', async () => {
    const info = await sandbox.getInfo()
    assert.equal(info.sandboxId, sandbox.sandboxId)
    assert.equal(info.state, 'running')
    assert.deepEqual(info.metadata, metadata)
    assert.equal(info.templateId.length > 0, true)
    assert.equal(info.name, 'base')
    assert.ok(info.startedAt instanceof Date && !isNaN(info.startedAt))
    assert.ok(info.endAt > info.startedAt, `endAt ${info.endAt.toISOString()} after startedAt ${info.startedAt.toISOString()}`)
    assert.ok(info.cpuCount >= 1)
    assert.ok(info.memoryMB >= 128)
    assert.match(info.envdVersion, /^\d+\.\d+\.\d+/)
    // diskSizeMB is in the API's SandboxDetail but the JS SDK drops it: ask the API.
    const raw = await api('GET', `/sandboxes/${sandbox.sandboxId}`)
    assert.equal(raw.status, 200)
    assert.ok(raw.json.diskSizeMB > 0, JSON.stringify(raw.json))
    assert.equal(raw.json.clientID.length > 0, true)
  })

  test('isRunning is true', async () => {
    assert.equal(await sandbox.isRunning(), true)
  })
})

describe('connect', () => {
  test('to a running sandbox returns the same sandbox and extends, never shortens, its timeout', async () => {
    const sandbox = await create({ timeoutMs: 300_000 })
    const before = (await sandbox.getInfo()).endAt
    const same = await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 10_000 })
    assert.equal(same.sandboxId, sandbox.sandboxId)
    const afterShort = (await same.getInfo()).endAt
    assert.ok(afterShort >= before, `connect with a shorter timeout moved endAt from ${before.toISOString()} to ${afterShort.toISOString()}`)
    await same.files.write('connected.txt', 'via connect')
    assert.equal(await sandbox.files.read('connected.txt'), 'via connect')

    await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 900_000 })
    const afterLong = (await sandbox.getInfo()).endAt
    assert.ok(afterLong > before, `connect with a longer timeout left endAt at ${afterLong.toISOString()}`)
  })

  test('to an unknown sandbox fails with SandboxNotFoundError', async () => {
    await assert.rejects(Sandbox.connect('nosuchsandbox0000000'), (err) => err.name === 'SandboxNotFoundError')
  })
})

describe('setTimeout', () => {
  test('shortens and extends the end time', async () => {
    const sandbox = await create({ timeoutMs: 300_000 })
    const start = (await sandbox.getInfo()).endAt
    await sandbox.setTimeout(60_000)
    const shorter = (await sandbox.getInfo()).endAt
    assert.ok(shorter < start, `setTimeout(60s) left endAt at ${shorter.toISOString()} (was ${start.toISOString()})`)
    await sandbox.setTimeout(600_000)
    const longer = (await sandbox.getInfo()).endAt
    assert.ok(longer > start, `setTimeout(600s) gave endAt ${longer.toISOString()} (created with ${start.toISOString()})`)
  })

  test('on an unknown sandbox fails with SandboxNotFoundError', async () => {
    await assert.rejects(Sandbox.setTimeout('nosuchsandbox0000000', 10_000), (err) => err.name === 'SandboxNotFoundError')
  })
})

describe('kill', () => {
  test('returns true, then false; the sandbox is gone', async () => {
    const sandbox = await create()
    assert.equal(await sandbox.kill(), true)
    assert.equal(await Sandbox.kill(sandbox.sandboxId), false)
    await assert.rejects(sandbox.getInfo(), (err) => err.name === 'SandboxNotFoundError')
    assert.equal(await sandbox.isRunning(), false)
    await assert.rejects(sandbox.commands.run('true'))
  })
})
