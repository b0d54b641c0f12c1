// Sandbox.list through the server: metadata filters, state filter, and pagination over more than one page.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { RUN, Sandbox, api, create, killCreated } from './helpers.mjs'

after(killCreated)

/** Every item of every page, and how many pages it took. */
async function listAll(opts) {
  const paginator = Sandbox.list(opts)
  const items = []
  let pages = 0
  while (paginator.hasNext) {
    items.push(...(await paginator.nextItems()))
    pages += 1
    assert.ok(pages <= 20, 'the paginator does not end')
  }
  return { items, pages }
}

describe('list', () => {
  const ids = []
  before(async () => {
    // Five sandboxes of this run; two of them also carry `group: odd`.
    for (let i = 0; i < 5; i++) {
      const metadata = { suite: 'list', run: RUN, index: String(i), ...(i % 2 === 1 ? { group: 'odd' } : {}) }
      ids.push((await create({ metadata })).sandboxId)
    }
  })

  test('with a metadata filter returns exactly the matching sandboxes, with their metadata', async () => {
    const { items } = await listAll({ query: { metadata: { run: RUN } } })
    assert.deepEqual(items.map((s) => s.sandboxId).sort(), [...ids].sort())
    for (const s of items) {
      assert.equal(s.state, 'running')
      assert.equal(s.metadata.run, RUN)
      assert.equal(s.metadata.suite, 'list')
      assert.equal(s.metadata.index, String(ids.indexOf(s.sandboxId)))
      assert.ok(s.startedAt <= s.endAt)
      assert.ok(s.cpuCount >= 1 && s.memoryMB >= 128)
      assert.match(s.envdVersion, /^\d+\.\d+\.\d+/)
    }
  })

  test('several metadata keys must all match', async () => {
    const { items } = await listAll({ query: { metadata: { run: RUN, group: 'odd' } } })
    assert.deepEqual(items.map((s) => s.sandboxId).sort(), [ids[1], ids[3]].sort())
    const none = await listAll({ query: { metadata: { run: RUN, group: 'even' } } })
    assert.deepEqual(none.items, [])
  })

  test('pages with limit 2 cover all five sandboxes once, in three pages, newest first', async () => {
    const { items, pages } = await listAll({ query: { metadata: { run: RUN } }, limit: 2 })
    assert.equal(pages, 3)
    const got = items.map((s) => s.sandboxId)
    assert.equal(new Set(got).size, 5, `duplicates across pages: ${got}`)
    assert.deepEqual([...got].sort(), [...ids].sort())
    for (let i = 1; i < items.length; i++) assert.ok(items[i - 1].startedAt >= items[i].startedAt, 'not newest first')
  })

  test('the X-Next-Token header carries the cursor and is absent on the last page', async () => {
    const q = `metadata=${encodeURIComponent(`run=${RUN}`)}&limit=2`
    const first = await api('GET', `/v2/sandboxes?${q}`)
    assert.equal(first.status, 200)
    assert.equal(first.json.length, 2)
    const token = first.headers.get('x-next-token')
    assert.ok(token, 'no X-Next-Token on a page that is not the last')
    const second = await api('GET', `/v2/sandboxes?${q}&nextToken=${encodeURIComponent(token)}`)
    assert.equal(second.status, 200)
    assert.equal(second.json.length, 2)
    const last = await api('GET', `/v2/sandboxes?${q}&nextToken=${encodeURIComponent(second.headers.get('x-next-token'))}`)
    assert.equal(last.json.length, 1)
    assert.ok(!last.headers.get('x-next-token'))
  })

  test('the state filter: running finds them, paused does not', async () => {
    const running = await listAll({ query: { metadata: { run: RUN }, state: ['running'] } })
    assert.equal(running.items.length, 5)
    const paused = await listAll({ query: { metadata: { run: RUN }, state: ['paused'] } })
    assert.deepEqual(paused.items, [])
    const both = await listAll({ query: { metadata: { run: RUN }, state: ['running', 'paused'] } })
    assert.equal(both.items.length, 5)
  })

  test('a killed sandbox leaves the list', async () => {
    assert.equal(await Sandbox.kill(ids[0]), true)
    const { items } = await listAll({ query: { metadata: { run: RUN } } })
    assert.deepEqual(items.map((s) => s.sandboxId).sort(), ids.slice(1).sort())
  })

  test('the deprecated GET /sandboxes lists running sandboxes too', async () => {
    const r = await api('GET', '/sandboxes')
    assert.equal(r.status, 200)
    const mine = r.json.filter((s) => s.metadata?.run === RUN).map((s) => s.sandboxID)
    assert.deepEqual(mine.sort(), ids.slice(1).sort())
  })
})
