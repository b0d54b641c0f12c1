// Durability of pause and resume with the official SDK: 200 cycles of one sandbox, each writing a file of random
// bytes, pausing, resuming and reading it back by checksum; every 25th pause is without memory (a cold boot).
// At the end every file written is checked once more inside the sandbox. Zero lost or corrupted writes.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, test } from 'node:test'

import { Sandbox, api, create, killCreated } from './helpers.mjs'

after(killCreated)

const CYCLES = 200

const sha256 = (data) => createHash('sha256').update(data).digest('hex')

test(`${CYCLES} pause/resume cycles lose or corrupt no write`, async () => {
  const sandbox = await create({ timeoutMs: 600_000 })
  await sandbox.commands.run('mkdir -p /home/user/durability')
  const manifest = []
  let coldBoots = 0
  for (let i = 0; i < CYCLES; i++) {
    const data = randomBytes(2048 + (i % 7) * 1024).toString('base64')
    const path = `/home/user/durability/${String(i).padStart(3, '0')}.txt`
    await sandbox.files.write(path, data)
    manifest.push(`${sha256(data)}  ${path}`)

    const keepMemory = i % 25 !== 24
    assert.equal(await sandbox.pause({ keepMemory }), true, `cycle ${i}: pause`)
    const paused = await api('GET', `/sandboxes/${sandbox.sandboxId}`)
    assert.equal(paused.json.state, 'paused', `cycle ${i}`)
    await Sandbox.connect(sandbox.sandboxId, { timeoutMs: 600_000 })
    if (!keepMemory) coldBoots++

    const back = await sandbox.files.read(path)
    assert.equal(sha256(back), sha256(data), `cycle ${i}: ${path} read back differs from what was written`)
  }
  assert.equal(coldBoots, Math.floor(CYCLES / 25))
  await sandbox.files.write('/home/user/durability.sha256', manifest.join('\n') + '\n')
  const check = await sandbox.commands.run('sha256sum --quiet -c /home/user/durability.sha256 && ls /home/user/durability | wc -l')
  assert.equal(check.stdout.trim(), String(CYCLES), check.stderr)
})
