// Snapshots and fork with the official SDK against a real server. The oci driver snapshots a sandbox's files as a
// read-only layer (no memory: CRIU does not work on these hosts), so sandboxes made from a snapshot, and forks,
// start with the source's files and fresh processes. Each copy has its own writable layer.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'

import { RUN, Sandbox, api, create, killCreated, track } from './helpers.mjs'

after(killCreated)

async function all(paginator) {
  const items = []
  while (paginator.hasNext) items.push(...(await paginator.nextItems()))
  return items
}

test('a snapshot makes three sandboxes, each with its files and each independent; the source keeps running', async () => {
  const source = await create()
  await source.files.write('snap.txt', 'from the source')
  await source.commands.run('mkdir -p /home/user/dir && echo nested > /home/user/dir/n.txt && sudo mkdir -p /opt/x && sudo touch /opt/x/root-owned')
  const snapshot = await source.createSnapshot()
  assert.match(snapshot.snapshotId, /^[a-z0-9]{20}:default$/)
  assert.deepEqual(snapshot.names, [])
  assert.equal(await source.isRunning(), true)
  assert.equal((await source.getInfo()).state, 'running')
  await source.files.write('snap.txt', 'changed after the snapshot')

  const copies = []
  for (let i = 0; i < 3; i++) copies.push(await create({}, snapshot.snapshotId))
  for (const [i, copy] of copies.entries()) {
    assert.notEqual(copy.sandboxId, source.sandboxId)
    assert.equal(await copy.files.read('snap.txt'), 'from the source')
    assert.equal(await copy.files.read('/home/user/dir/n.txt'), 'nested\n')
    assert.equal((await copy.commands.run('stat -c %U /opt/x/root-owned')).stdout, 'root\n', 'ownership is kept')
    assert.equal((await copy.getInfo()).templateId, snapshot.snapshotId.replace(/:default$/, ''))
    await copy.files.write('snap.txt', `copy ${i}`)
  }
  for (const [i, copy] of copies.entries()) assert.equal(await copy.files.read('snap.txt'), `copy ${i}`)
  assert.equal(await source.files.read('snap.txt'), 'changed after the snapshot')

  assert.equal(await Sandbox.deleteSnapshot(snapshot.snapshotId), true)
  assert.equal(await copies[0].isRunning(), true, 'sandboxes made from a deleted snapshot keep running')
  assert.equal(await copies[0].files.read('/home/user/dir/n.txt'), 'nested\n')
})

test('named snapshots: list by sandbox and name with paging, the same name replaces, delete twice', async () => {
  const source = await create()
  const other = await create()
  const name = `team-${RUN}/snap`
  await source.files.write('version.txt', 'one')
  const first = await source.createSnapshot({ name })
  assert.equal(first.snapshotId, `${name}:default`)
  assert.deepEqual(first.names, [name])
  const unnamed = await other.createSnapshot()

  assert.deepEqual((await all(source.listSnapshots())).map((s) => s.snapshotId), [first.snapshotId])
  assert.deepEqual((await all(Sandbox.listSnapshots({ sandboxId: other.sandboxId }))).map((s) => s.snapshotId),
    [unnamed.snapshotId])
  assert.deepEqual((await all(Sandbox.listSnapshots({ name }))).map((s) => s.names), [[name]])
  const paginator = Sandbox.listSnapshots({ limit: 1 })
  assert.equal((await paginator.nextItems()).length, 1)
  assert.equal(paginator.hasNext, true, 'two snapshots in pages of one')
  const everything = (await all(Sandbox.listSnapshots())).map((s) => s.snapshotId)
  assert.ok(everything.includes(first.snapshotId) && everything.includes(unnamed.snapshotId))

  // the same name again: a new build under the same snapshot id; the old one is gone
  await source.files.write('version.txt', 'two')
  assert.equal(await source.pause(), true)
  const second = await source.createSnapshot({ name })
  assert.equal(second.snapshotId, first.snapshotId)
  assert.equal((await source.getInfo()).state, 'paused', 'a paused source stays paused')
  assert.equal((await all(Sandbox.listSnapshots({ name }))).length, 1)
  const fromName = await create({}, name)
  assert.equal(await fromName.files.read('version.txt'), 'two')

  assert.equal(await Sandbox.deleteSnapshot(second.snapshotId), true)
  assert.equal(await Sandbox.deleteSnapshot(second.snapshotId), false, 'a second delete finds nothing')
  assert.equal(await Sandbox.deleteSnapshot(unnamed.snapshotId), true)
  assert.equal(await fromName.isRunning(), true)
  await assert.rejects(create({}, name), /not found/i)
  await assert.rejects(Sandbox.deleteSnapshot('base'), /not a snapshot/)
  assert.equal((await api('POST', `/sandboxes/${source.sandboxId}/snapshots`, { body: { name: 'Bad Name' } })).status, 400)
})

test('fork: two sandboxes with the source files; the source keeps its id, state and expiry', async () => {
  const source = await create({ timeoutMs: 300_000, metadata: { run: RUN, role: 'fork-source' }, envs: { FROM: 'source' } })
  await source.files.write('fork.txt', 'before the fork')
  const before = await source.getInfo()

  const forks = await source.fork({ count: 2, timeoutMs: 120_000 })
  assert.equal(forks.length, 2)
  for (const fork of forks) {
    assert.ok(fork instanceof Sandbox, `a fork failed: ${fork}`)
    track(fork)
  }
  assert.notEqual(forks[0].sandboxId, forks[1].sandboxId)
  for (const [i, fork] of forks.entries()) {
    assert.equal(await fork.files.read('fork.txt'), 'before the fork')
    assert.equal((await fork.commands.run('echo $FROM')).stdout, 'source\n')
    const info = await fork.getInfo()
    assert.equal(info.state, 'running')
    assert.deepEqual(info.metadata, { run: RUN, role: 'fork-source' })
    await fork.files.write('fork.txt', `fork ${i}`)
  }
  assert.equal(await forks[0].files.read('fork.txt'), 'fork 0')
  assert.equal(await source.files.read('fork.txt'), 'before the fork')
  const after = await source.getInfo()
  assert.equal(after.state, 'running')
  assert.equal(after.endAt.getTime(), before.endAt.getTime(), 'the source keeps its expiry')
  const listed = (await all(Sandbox.listSnapshots({ sandboxId: source.sandboxId }))).length
  assert.equal(listed, 0, "the fork's snapshot is internal and already deleted")

  for (const count of [0, 101]) {
    const bad = await api('POST', `/sandboxes/${source.sandboxId}/fork`, { body: { count } })
    assert.equal(bad.status, 400, `count ${count}`)
  }
  assert.equal((await api('POST', '/sandboxes/nosuchsandbox0000001/fork', { body: {} })).status, 404)
})
