// sandbox.files against envd's /files endpoint and Filesystem service, as E2B's js-sdk tests
// (tests/sandbox/files) use it: relative paths land in /home/user and belong to `user`.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'

import { FileNotFoundError, FileType, InvalidArgumentError, NotFoundError, SandboxError } from 'e2b'

import { HOME, debugSandbox, decoder, encoder, uniq, waitFor } from './helpers.mjs'

let sandbox
/** Everything a test creates in the home directory, removed at the end (harmless if already gone). */
const created = []

before(async () => {
  sandbox = await debugSandbox()
})

after(async () => {
  for (const path of created) await sandbox.files.remove(path).catch(() => {})
})

/** A unique relative name, removed after the tests. */
function name(prefix, ext = '') {
  const n = uniq(prefix) + ext
  created.push(n)
  return n
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

async function collect(stream) {
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** A ReadableStream of `total` pseudo-random bytes in chunks, and the bytes themselves. */
function byteStream(total, chunkSize = 64 * 1024) {
  const bytes = randomBytes(total)
  let offset = 0
  const stream = new ReadableStream({
    pull(controller) {
      if (offset >= total) return controller.close()
      controller.enqueue(new Uint8Array(bytes.subarray(offset, offset + chunkSize)))
      offset += chunkSize
    },
  })
  return { stream, bytes }
}

describe('files: write and read', () => {
  test('write text returns the entry in /home/user; read gives it back', async () => {
    const f = name('write', '.txt')
    const info = await sandbox.files.write(f, 'This is a test file.')
    assert.equal(info.name, f)
    assert.equal(info.type, 'file')
    assert.equal(info.path, `${HOME}/${f}`)
    assert.equal(await sandbox.files.exists(f), true)
    assert.equal(await sandbox.files.read(f), 'This is a test file.')
    assert.equal(await sandbox.files.read(`${HOME}/${f}`), 'This is a test file.')
  })

  test('overwrite replaces the content', async () => {
    const f = name('overwrite', '.txt')
    await sandbox.files.write(f, 'Initial content, longer than the new one.')
    await sandbox.files.write(f, 'New content.')
    assert.equal(await sandbox.files.read(f), 'New content.')
  })

  test('write to a directory that does not exist creates it', async () => {
    const dir = name('nested')
    await sandbox.files.write(`${dir}/a/b/test_write.txt`, 'This should succeed too.')
    assert.equal(await sandbox.files.exists(`${dir}/a/b/test_write.txt`), true)
    assert.equal(await sandbox.files.read(`${dir}/a/b/test_write.txt`), 'This should succeed too.')
    const parent = await sandbox.files.getInfo(`${dir}/a`)
    assert.equal(parent.type, 'dir')
    assert.equal(parent.owner, 'user')
  })

  test('written files belong to user:user with mode 0644', async () => {
    const f = name('owner', '.txt')
    await sandbox.files.write(f, 'x')
    const info = await sandbox.files.getInfo(f)
    assert.equal(info.owner, 'user')
    assert.equal(info.group, 'user')
    assert.equal(info.mode, 0o644)
    assert.equal(info.permissions, '-rw-r--r--')
    const ls = await sandbox.commands.run(`stat -c '%U:%G' ${f}`)
    assert.equal(ls.stdout.trim(), 'user:user')
  })

  test('write as root: the file belongs to root', async () => {
    // An absolute path under /home/user: the harness's /home is private to envd, the host's /root is not.
    const f = `${HOME}/${name('root', '.txt')}`
    const info = await sandbox.files.write(f, 'root owned', { user: 'root' })
    assert.equal(info.path, f)
    assert.equal(await sandbox.files.read(f, { user: 'root' }), 'root owned')
    const stat = await sandbox.files.getInfo(f, { user: 'root' })
    assert.equal(stat.owner, 'root')
    assert.equal(stat.group, 'root')
  })

  test('relative paths resolve against the home of the requesting user', async () => {
    const f = name('relative-root', '.txt')
    const info = await sandbox.files.write(f, 'x', { user: 'root' }).catch((e) => e)
    // root's home is /root; do not leave anything there on the host.
    if (!(info instanceof Error)) await sandbox.files.remove(`/root/${f}`, { user: 'root' })
    assert.ok(!(info instanceof Error), `write as root failed: ${info}`)
    assert.equal(info.path, `/root/${f}`)
  })

  test('unicode text round trip', async () => {
    const f = name('unicode', '.txt')
    const text = 'Příliš žluťoučký kůň úpěl ďábelské ódy 😀\n日本語\n'
    await sandbox.files.write(f, text)
    assert.equal(await sandbox.files.read(f), text)
    assert.equal((await sandbox.files.getInfo(f)).size, encoder.encode(text).length)
  })

  test('bytes: all 256 byte values round trip as bytes, blob and stream', async () => {
    const f = name('bytes', '.bin')
    const bytes = new Uint8Array(256 * 4).map((_, i) => i % 256)
    await sandbox.files.write(f, bytes.buffer)
    const asBytes = await sandbox.files.read(f, { format: 'bytes' })
    assert.ok(asBytes instanceof Uint8Array)
    assert.deepEqual(Buffer.from(asBytes), Buffer.from(bytes))
    const asBlob = await sandbox.files.read(f, { format: 'blob' })
    assert.ok(asBlob instanceof Blob)
    assert.deepEqual(Buffer.from(await asBlob.arrayBuffer()), Buffer.from(bytes))
    const asStream = await sandbox.files.read(f, { format: 'stream' })
    assert.deepEqual(await collect(asStream), Buffer.from(bytes))
    const od = await sandbox.commands.run(`od -An -tu1 -N4 -j254 ${f}`)
    assert.deepEqual(od.stdout.trim().split(/\s+/).map(Number), [254, 255, 0, 1])
  })

  test('write a Blob', async () => {
    const f = name('blob', '.bin')
    const bytes = randomBytes(10000)
    await sandbox.files.write(f, new Blob([bytes]))
    assert.deepEqual(Buffer.from(await sandbox.files.read(f, { format: 'bytes' })), bytes)
  })

  test('write a stream (octet-stream upload) of 8 MiB and read it back as a stream', async () => {
    const f = name('stream', '.bin')
    const { stream, bytes } = byteStream(8 * 1024 * 1024)
    const info = await sandbox.files.write(f, stream)
    assert.equal(info.path, `${HOME}/${f}`)
    assert.equal((await sandbox.files.getInfo(f)).size, bytes.length)
    const back = await collect(await sandbox.files.read(f, { format: 'stream' }))
    assert.equal(back.length, bytes.length)
    assert.equal(sha256(back), sha256(bytes))
    const inside = await sandbox.commands.run(`sha256sum ${f}`)
    assert.equal(inside.stdout.split(' ')[0], sha256(bytes))
  })

  test('write bytes with useOctetStream', async () => {
    const f = name('octet', '.bin')
    const bytes = randomBytes(300000)
    const info = await sandbox.files.write(f, bytes, { useOctetStream: true })
    assert.equal(info.name, f)
    assert.equal(sha256(await sandbox.files.read(f, { format: 'bytes' })), sha256(bytes))
  })

  test('empty file reads as empty string and empty bytes', async () => {
    const f = name('empty', '.txt')
    await sandbox.commands.run(`touch ${f}`)
    assert.equal(await sandbox.files.read(f), '')
    assert.equal((await sandbox.files.read(f, { format: 'bytes' })).length, 0)
    const written = name('empty-written', '.txt')
    await sandbox.files.write(written, '')
    assert.equal(await sandbox.files.read(written), '')
    assert.equal((await sandbox.files.getInfo(written)).size, 0)
  })

  test('a file written by a command can be read', async () => {
    const f = name('from-cmd', '.txt')
    await sandbox.commands.run(`printf 'line1\\nline2' > ${f}`)
    assert.equal(await sandbox.files.read(f), 'line1\nline2')
  })

  test('read of a file that does not exist fails with FileNotFoundError (and NotFoundError)', async () => {
    const missing = `missing-${uniq('read')}.txt`
    await assert.rejects(sandbox.files.read(missing), FileNotFoundError)
    await assert.rejects(sandbox.files.read(missing), NotFoundError)
  })

  test('read of a directory fails', async () => {
    const dir = name('readdir')
    await sandbox.files.makeDir(dir)
    await assert.rejects(sandbox.files.read(dir), InvalidArgumentError)
  })
})

describe('files: multi-file write', () => {
  test('writeFiles writes several files in one request and returns their entries', async () => {
    const dir = name('multi')
    const files = [
      { path: `${dir}/file1.txt`, data: 'File 1' },
      { path: `${dir}/sub/file2.txt`, data: encoder.encode('File 2') },
      { path: `${HOME}/${dir}/file3.bin`, data: new Uint8Array([0, 1, 2, 3]).buffer },
      { path: `${dir}/file4.txt`, data: new Blob(['File 4']) },
    ]
    const infos = await sandbox.files.writeFiles(files)
    assert.equal(infos.length, files.length)
    const paths = infos.map((i) => i.path).sort()
    assert.deepEqual(paths, [
      `${HOME}/${dir}/file1.txt`,
      `${HOME}/${dir}/file3.bin`,
      `${HOME}/${dir}/file4.txt`,
      `${HOME}/${dir}/sub/file2.txt`,
    ])
    for (const i of infos) assert.equal(i.type, 'file')
    assert.equal(await sandbox.files.read(`${dir}/file1.txt`), 'File 1')
    assert.equal(await sandbox.files.read(`${dir}/sub/file2.txt`), 'File 2')
    assert.deepEqual([...(await sandbox.files.read(`${dir}/file3.bin`, { format: 'bytes' }))], [0, 1, 2, 3])
    assert.equal(await sandbox.files.read(`${dir}/file4.txt`), 'File 4')
  })

  test('write with an array of files is the same as writeFiles', async () => {
    const dir = name('multi-array')
    const infos = await sandbox.files.write([
      { path: `${dir}/a.txt`, data: 'A' },
      { path: `${dir}/b.txt`, data: 'B' },
    ])
    assert.ok(Array.isArray(infos))
    assert.equal(infos.length, 2)
    assert.equal(await sandbox.files.read(`${dir}/b.txt`), 'B')
  })

  test('writeFiles with no files returns an empty list', async () => {
    assert.deepEqual(await sandbox.files.writeFiles([]), [])
  })

  test('writeFiles of one file returns a list of one', async () => {
    const f = name('multi-one', '.txt')
    const infos = await sandbox.files.writeFiles([{ path: f, data: 'one' }])
    assert.ok(Array.isArray(infos))
    assert.equal(infos.length, 1)
    assert.equal(infos[0].path, `${HOME}/${f}`)
  })
})

describe('files: list, exists, getInfo', () => {
  test('list an empty directory, then one with a file', async () => {
    const dir = name('list')
    await sandbox.files.makeDir(dir)
    assert.deepEqual(await sandbox.files.list(dir), [])
    await sandbox.files.write(`${dir}/test_file`, 'test')
    const files = await sandbox.files.list(dir)
    assert.equal(files.length, 1)
    assert.equal(files[0].name, 'test_file')
    assert.equal(files[0].type, 'file')
    assert.equal(files[0].path, `${HOME}/${dir}/test_file`)
  })

  test('list with depth 1, 2 and 3', async () => {
    const dir = name('depth')
    for (const d of ['subdir1/subdir1_1', 'subdir1/subdir1_2', 'subdir2/subdir2_1', 'subdir2/subdir2_2']) {
      await sandbox.files.makeDir(`${dir}/${d}`)
    }
    await sandbox.files.write(`${dir}/file1.txt`, 'Hello, world!')
    const top = [
      ['file1.txt', 'file', 'file1.txt'],
      ['subdir1', 'dir', 'subdir1'],
      ['subdir2', 'dir', 'subdir2'],
    ]
    const all = [
      ['file1.txt', 'file', 'file1.txt'],
      ['subdir1', 'dir', 'subdir1'],
      ['subdir1_1', 'dir', 'subdir1/subdir1_1'],
      ['subdir1_2', 'dir', 'subdir1/subdir1_2'],
      ['subdir2', 'dir', 'subdir2'],
      ['subdir2_1', 'dir', 'subdir2/subdir2_1'],
      ['subdir2_2', 'dir', 'subdir2/subdir2_2'],
    ]
    const shape = (entries) => entries.map((e) => [e.name, e.type, e.path])
    const expected = (rows) => rows.map(([n, t, rel]) => [n, t, `${HOME}/${dir}/${rel}`])
    assert.deepEqual(shape(await sandbox.files.list(dir)), expected(top))
    assert.deepEqual(shape(await sandbox.files.list(dir, { depth: 1 })), expected(top))
    assert.deepEqual(shape(await sandbox.files.list(dir, { depth: 2 })), expected(all))
    assert.deepEqual(shape(await sandbox.files.list(dir, { depth: 3 })), expected(all))
  })

  test('list entries carry mode, permissions, owner, group, size and time', async () => {
    const dir = name('entries')
    await sandbox.files.makeDir(`${dir}/subdir`)
    await sandbox.files.write(`${dir}/test.txt`, 'Hello, World!')
    const entries = new Map((await sandbox.files.list(dir)).map((e) => [e.name, e]))
    const d = entries.get('subdir')
    assert.equal(d.type, 'dir')
    assert.equal(d.mode, 0o755)
    assert.equal(d.permissions, 'drwxr-xr-x')
    assert.equal(d.owner, 'user')
    assert.equal(d.group, 'user')
    assert.ok(d.modifiedTime instanceof Date)
    const f = entries.get('test.txt')
    assert.equal(f.path, `${HOME}/${dir}/test.txt`)
    assert.equal(f.type, 'file')
    assert.equal(f.mode, 0o644)
    assert.equal(f.permissions, '-rw-r--r--')
    assert.equal(f.owner, 'user')
    assert.equal(f.group, 'user')
    assert.equal(f.size, 'Hello, World!'.length)
    assert.ok(f.modifiedTime instanceof Date)
    assert.ok(Math.abs(f.modifiedTime.getTime() - Date.now()) < 10 * 60 * 1000, `modifiedTime ${f.modifiedTime}`)
    assert.equal(f.symlinkTarget, undefined)
  })

  test('list shows symlinks with the type and resolved path of their target', async () => {
    // As E2B's envd does (shared/pkg/filesystem GetEntryInfo): a link reports its target's type and the target's
    // resolved absolute path in symlinkTarget.
    const dir = name('symlinks')
    await sandbox.files.write(`${dir}/target.txt`, 't')
    await sandbox.files.makeDir(`${dir}/target-dir`)
    await sandbox.commands.run(`cd ${dir} && ln -s target.txt link && ln -s target-dir dirlink`)
    const entries = await sandbox.files.list(dir)
    const link = entries.find((e) => e.name === 'link')
    assert.ok(link, JSON.stringify(entries))
    assert.equal(link.type, FileType.FILE)
    assert.equal(link.path, `${HOME}/${dir}/link`)
    assert.equal(link.symlinkTarget, `${HOME}/${dir}/target.txt`)
    const dirlink = entries.find((e) => e.name === 'dirlink')
    assert.equal(dirlink.type, FileType.DIR)
    assert.equal(dirlink.symlinkTarget, `${HOME}/${dir}/target-dir`)
    const info = await sandbox.files.getInfo(`${dir}/link`)
    assert.equal(info.symlinkTarget, `${HOME}/${dir}/target.txt`)
    assert.equal(await sandbox.files.read(`${dir}/link`), 't')
  })

  test('list of the home directory by absolute path', async () => {
    const f = name('in-home', '.txt')
    await sandbox.files.write(f, 'x')
    const entries = await sandbox.files.list(HOME)
    assert.ok(entries.some((e) => e.name === f && e.path === `${HOME}/${f}`))
  })

  test('list of a directory that does not exist fails with FileNotFoundError', async () => {
    await assert.rejects(sandbox.files.list(`missing-${uniq('list')}`), FileNotFoundError)
  })

  test('list of a file fails', async () => {
    const f = name('list-file', '.txt')
    await sandbox.files.write(f, 'x')
    await assert.rejects(sandbox.files.list(f), InvalidArgumentError)
  })

  test('list with depth 0 is refused', async () => {
    await assert.rejects(sandbox.files.list('.', { depth: 0 }), /depth should be at least one/)
  })

  test('exists: file, directory, missing', async () => {
    const f = name('exists', '.txt')
    await sandbox.files.write(f, 'x')
    assert.equal(await sandbox.files.exists(f), true)
    assert.equal(await sandbox.files.exists(HOME), true)
    assert.equal(await sandbox.files.exists(`missing-${uniq('exists')}`), false)
  })

  test('getInfo of a file', async () => {
    const f = name('info', '.txt')
    await sandbox.files.write(f, 'test')
    const info = await sandbox.files.getInfo(f)
    const pwd = await sandbox.commands.run('pwd')
    assert.equal(info.name, f)
    assert.equal(info.type, 'file')
    assert.equal(info.path, `${pwd.stdout.trim()}/${f}`)
    assert.equal(info.path, `${HOME}/${f}`)
    assert.equal(info.size, 4)
    assert.equal(info.owner, 'user')
  })

  test('getInfo of a directory', async () => {
    const dir = name('info-dir')
    await sandbox.files.makeDir(dir)
    const info = await sandbox.files.getInfo(dir)
    assert.equal(info.name, dir)
    assert.equal(info.type, 'dir')
    assert.equal(info.path, `${HOME}/${dir}`)
    assert.equal(info.permissions, 'drwxr-xr-x')
  })

  test('getInfo of something missing fails with FileNotFoundError', async () => {
    await assert.rejects(sandbox.files.getInfo(`missing-${uniq('info')}.txt`), FileNotFoundError)
  })
})

describe('files: makeDir, rename, remove', () => {
  test('makeDir creates, then reports false for an existing directory', async () => {
    const dir = name('mkdir')
    assert.equal(await sandbox.files.makeDir(dir), true)
    assert.equal(await sandbox.files.exists(dir), true)
    assert.equal(await sandbox.files.makeDir(dir), false)
    const info = await sandbox.files.getInfo(dir)
    assert.equal(info.type, 'dir')
    assert.equal(info.owner, 'user')
  })

  test('makeDir creates missing parents', async () => {
    const dir = name('mkdir-nested')
    assert.equal(await sandbox.files.makeDir(`${dir}/a/b/c`), true)
    assert.equal((await sandbox.files.getInfo(`${dir}/a/b/c`)).type, 'dir')
    assert.equal((await sandbox.files.getInfo(`${dir}/a`)).owner, 'user')
  })

  test('rename a file', async () => {
    const from = name('rename-old', '.txt')
    const to = name('rename-new', '.txt')
    await sandbox.files.write(from, 'This file will be renamed.')
    const info = await sandbox.files.rename(from, to)
    assert.equal(info.name, to)
    assert.equal(info.type, 'file')
    assert.equal(info.path, `${HOME}/${to}`)
    assert.equal(await sandbox.files.exists(from), false)
    assert.equal(await sandbox.files.exists(to), true)
    assert.equal(await sandbox.files.read(to), 'This file will be renamed.')
  })

  test('rename a directory with its content into a new parent', async () => {
    const from = name('rename-dir')
    const to = name('rename-dir-new')
    await sandbox.files.write(`${from}/inner.txt`, 'inner')
    const info = await sandbox.files.rename(from, `${to}/moved`)
    assert.equal(info.type, 'dir')
    assert.equal(info.path, `${HOME}/${to}/moved`)
    assert.equal(await sandbox.files.read(`${to}/moved/inner.txt`), 'inner')
  })

  test('rename of something missing fails with FileNotFoundError', async () => {
    await assert.rejects(
      sandbox.files.rename(`missing-${uniq('rename')}.txt`, `new-${uniq('rename')}.txt`),
      FileNotFoundError
    )
  })

  test('remove a file', async () => {
    const f = name('remove', '.txt')
    await sandbox.files.write(f, 'This file will be removed.')
    await sandbox.files.remove(f)
    assert.equal(await sandbox.files.exists(f), false)
  })

  test('remove a directory with its content', async () => {
    const dir = name('remove-dir')
    await sandbox.files.write(`${dir}/a/b/c.txt`, 'c')
    await sandbox.files.remove(dir)
    assert.equal(await sandbox.files.exists(dir), false)
  })

  test('remove of something missing succeeds', async () => {
    await sandbox.files.remove(`missing-${uniq('remove')}.txt`)
  })
})

describe('files: metadata (user.e2b.* extended attributes)', () => {
  test('write with metadata returns it and getInfo shows it', async () => {
    const f = name('meta', '.txt')
    const metadata = { author: 'mish', purpose: 'upload' }
    const info = await sandbox.files.write(f, 'with metadata', { metadata })
    assert.equal(Array.isArray(info), false)
    assert.deepEqual(info.metadata, metadata)
    assert.deepEqual((await sandbox.files.getInfo(f)).metadata, metadata)
  })

  test('metadata with octet-stream upload', async () => {
    const f = name('meta-octet', '.txt')
    const metadata = { author: 'mish', purpose: 'upload' }
    const info = await sandbox.files.write(f, 'with metadata', { metadata, useOctetStream: true })
    assert.deepEqual(info.metadata, metadata)
    assert.deepEqual((await sandbox.files.getInfo(f)).metadata, metadata)
  })

  test('a file written without metadata has none', async () => {
    const f = name('meta-none', '.txt')
    const info = await sandbox.files.write(f, 'no metadata here')
    assert.equal(info.metadata, undefined)
    assert.equal((await sandbox.files.getInfo(f)).metadata, undefined)
  })

  test('writeFiles applies metadata to every file', async () => {
    const dir = name('meta-multi')
    const metadata = { source: 'test-suite' }
    const infos = await sandbox.files.writeFiles(
      [
        { path: `${dir}/1.txt`, data: 'File 1' },
        { path: `${dir}/2.txt`, data: 'File 2' },
      ],
      { metadata }
    )
    assert.equal(infos.length, 2)
    for (const info of infos) {
      assert.deepEqual(info.metadata, metadata)
      assert.deepEqual((await sandbox.files.getInfo(info.path)).metadata, metadata)
    }
  })

  test('list shows metadata', async () => {
    const dir = name('meta-list')
    await sandbox.files.write(`${dir}/listed.txt`, 'content', { metadata: { tag: 'listed' } })
    const entry = (await sandbox.files.list(dir)).find((e) => e.name === 'listed.txt')
    assert.ok(entry)
    assert.deepEqual(entry.metadata, { tag: 'listed' })
  })

  test('rename keeps metadata', async () => {
    const from = name('meta-old', '.txt')
    const to = name('meta-new', '.txt')
    await sandbox.files.write(from, 'content', { metadata: { stage: 'renamed' } })
    const info = await sandbox.files.rename(from, to)
    assert.deepEqual(info.metadata, { stage: 'renamed' })
  })

  test('overwriting without metadata clears stale metadata', async () => {
    const f = name('meta-overwrite', '.txt')
    await sandbox.files.write(f, 'first', { metadata: { author: 'mish' } })
    const info = await sandbox.files.write(f, 'second')
    assert.equal(info.metadata, undefined)
    assert.equal((await sandbox.files.getInfo(f)).metadata, undefined)
  })

  test('an xattr set by a program shows up as metadata', async (t) => {
    const has = await sandbox.commands.run('command -v setfattr || true')
    if (!has.stdout.trim()) return t.skip('setfattr is not installed (Debian package attr; scripts/setup.sh installs it)')
    const f = name('meta-xattr', '.txt')
    await sandbox.files.write(f, 'content')
    await sandbox.commands.run(`setfattr -n user.e2b.author -v mish ${HOME}/${f}`)
    assert.deepEqual((await sandbox.files.getInfo(f)).metadata, { author: 'mish' })
  })
})

describe('files: gzip content encoding', () => {
  test('write and read with gzip', async () => {
    const f = name('gzip', '.txt')
    const content = 'This is a test file with gzip encoding.'
    const info = await sandbox.files.write(f, content, { gzip: true })
    assert.equal(info.name, f)
    assert.equal(info.type, 'file')
    assert.equal(info.path, `${HOME}/${f}`)
    assert.equal(await sandbox.files.read(f, { gzip: true }), content)
  })

  test('write with gzip, read plain: stored decompressed', async () => {
    const f = name('gzip-plain', '.txt')
    await sandbox.files.write(f, 'Written with gzip, read without.', { gzip: true })
    assert.equal(await sandbox.files.read(f), 'Written with gzip, read without.')
    const inside = await sandbox.commands.run(`cat ${f}`)
    assert.equal(inside.stdout, 'Written with gzip, read without.')
  })

  test('writeFiles with gzip', async () => {
    const dir = name('gzip-multi')
    const files = [1, 2, 3].map((i) => ({ path: `${dir}/${i}.txt`, data: `File ${i} content` }))
    const infos = await sandbox.files.writeFiles(files, { gzip: true })
    assert.equal(infos.length, 3)
    for (const f of files) assert.equal(await sandbox.files.read(f.path), f.data)
  })

  test('read bytes with gzip', async () => {
    const f = name('gzip-bytes', '.bin')
    const bytes = randomBytes(200000)
    await sandbox.files.write(f, bytes)
    const back = await sandbox.files.read(f, { format: 'bytes', gzip: true })
    assert.ok(back instanceof Uint8Array)
    assert.equal(sha256(back), sha256(bytes))
  })

  test('a gzip stream of 4 MiB round trips', async () => {
    const f = name('gzip-stream', '.bin')
    const { stream, bytes } = byteStream(4 * 1024 * 1024)
    await sandbox.files.write(f, stream, { gzip: true })
    const back = await collect(await sandbox.files.read(f, { format: 'stream', gzip: true }))
    assert.equal(sha256(back), sha256(bytes))
  })
})

describe('files: watchDir', () => {
  /** Starts watching `dir` and records every event; `until(pred)` waits for a matching one. */
  async function watch(dir, opts) {
    const events = []
    const handle = await sandbox.files.watchDir(dir, (e) => events.push(e), opts)
    return {
      events,
      handle,
      until: (what, pred) => waitFor(what, () => events.find(pred)),
    }
  }

  test('watch reports create, write, rename and remove', async () => {
    const dir = name('watch')
    await sandbox.files.makeDir(dir)
    const w = await watch(dir)
    try {
      await sandbox.files.write(`${dir}/a.txt`, 'one')
      await w.until('create a.txt', (e) => e.type === 'create' && e.name === 'a.txt')
      await w.until('write a.txt', (e) => e.type === 'write' && e.name === 'a.txt')
      await sandbox.files.rename(`${dir}/a.txt`, `${dir}/b.txt`)
      await w.until('rename a.txt', (e) => e.type === 'rename' && e.name === 'a.txt')
      await w.until('create b.txt', (e) => e.type === 'create' && e.name === 'b.txt')
      await sandbox.files.remove(`${dir}/b.txt`)
      await w.until('remove b.txt', (e) => e.type === 'remove' && e.name === 'b.txt')
    } finally {
      await w.handle.stop()
    }
  })

  test('watch reports writes to an existing file', async () => {
    const dir = name('watch-write')
    await sandbox.files.write(`${dir}/test_watch.txt`, 'This file will be watched.')
    const w = await watch(dir)
    try {
      await sandbox.files.write(`${dir}/test_watch.txt`, 'This file has been modified.')
      await w.until('write test_watch.txt', (e) => e.type === 'write' && e.name === 'test_watch.txt')
    } finally {
      await w.handle.stop()
    }
  })

  test('watch sees changes made by commands, including chmod', async () => {
    const dir = name('watch-cmd')
    await sandbox.files.makeDir(dir)
    const w = await watch(dir)
    try {
      await sandbox.commands.run(`echo hi > ${dir}/c.txt && chmod 600 ${dir}/c.txt`)
      await w.until('create c.txt', (e) => e.type === 'create' && e.name === 'c.txt')
      await w.until('chmod c.txt', (e) => e.type === 'chmod' && e.name === 'c.txt')
    } finally {
      await w.handle.stop()
    }
  })

  test('non-recursive watch does not report nested changes', async () => {
    const dir = name('watch-flat')
    await sandbox.files.makeDir(`${dir}/nested`)
    const w = await watch(dir)
    try {
      await sandbox.files.write(`${dir}/nested/deep.txt`, 'deep')
      await sandbox.files.write(`${dir}/top.txt`, 'top')
      await w.until('write top.txt', (e) => e.type === 'write' && e.name === 'top.txt')
      assert.equal(w.events.find((e) => e.name.includes('deep.txt')), undefined)
    } finally {
      await w.handle.stop()
    }
  })

  test('recursive watch reports nested changes with paths relative to the watched directory', async () => {
    const dir = name('watch-rec')
    await sandbox.files.write(`${dir}/nested/test_watch.txt`, 'This file will be watched.')
    const w = await watch(dir, { recursive: true })
    try {
      await sandbox.files.write(`${dir}/nested/test_watch.txt`, 'This file has been modified.')
      await w.until('write nested/test_watch.txt', (e) => e.type === 'write' && e.name === 'nested/test_watch.txt')
    } finally {
      await w.handle.stop()
    }
  })

  test('recursive watch follows directories created after it started', async () => {
    const dir = name('watch-rec-add')
    await sandbox.files.makeDir(dir)
    const w = await watch(dir, { recursive: true })
    try {
      await sandbox.files.makeDir(`${dir}/added`)
      await w.until('create added', (e) => e.type === 'create' && e.name === 'added')
      await sandbox.files.write(`${dir}/added/test_watch.txt`, 'content')
      await w.until('write added/test_watch.txt', (e) => e.type === 'write' && e.name === 'added/test_watch.txt')
      await sandbox.files.makeDir(`${dir}/added/deeper`)
      await sandbox.files.write(`${dir}/added/deeper/x.txt`, 'x')
      await w.until('write added/deeper/x.txt', (e) => e.type === 'write' && e.name === 'added/deeper/x.txt')
    } finally {
      await w.handle.stop()
    }
  })

  test('includeEntry adds the entry to events', async () => {
    const dir = name('watch-entry')
    await sandbox.files.makeDir(dir)
    const w = await watch(dir, { includeEntry: true })
    try {
      await sandbox.files.write(`${dir}/e.txt`, 'entry')
      const e = await w.until('create e.txt with entry', (ev) => ev.type === 'create' && ev.name === 'e.txt')
      assert.ok(e.entry, `event without entry: ${JSON.stringify(e)}`)
      assert.equal(e.entry.name, 'e.txt')
      assert.equal(e.entry.path, `${HOME}/${dir}/e.txt`)
      assert.equal(e.entry.type, 'file')
    } finally {
      await w.handle.stop()
    }
  })

  test('after stop no more events arrive', async () => {
    const dir = name('watch-stop')
    await sandbox.files.makeDir(dir)
    const w = await watch(dir)
    await sandbox.files.write(`${dir}/before.txt`, 'x')
    await w.until('create before.txt', (e) => e.name === 'before.txt')
    await w.handle.stop()
    await sandbox.files.write(`${dir}/after.txt`, 'x')
    // A watcher that is still alive reports within milliseconds; give it a generous chance to (wrongly) do so.
    await new Promise((r) => setTimeout(r, 1000))
    assert.equal(w.events.find((e) => e.name === 'after.txt'), undefined)
  })

  test('watch of a directory that does not exist fails with FileNotFoundError', async () => {
    await assert.rejects(sandbox.files.watchDir(`missing-${uniq('watch')}`, () => {}), FileNotFoundError)
  })

  test('watch of a file fails', async () => {
    const f = name('watch-file', '.txt')
    await sandbox.files.write(f, 'x')
    await assert.rejects(sandbox.files.watchDir(f, () => {}), SandboxError)
  })
})

describe('files: decoding sanity', () => {
  test('text read decodes UTF-8 split across chunk boundaries', async () => {
    const f = name('utf8-big', '.txt')
    const text = '😀ž'.repeat(300000)
    await sandbox.files.write(f, text)
    const back = await sandbox.files.read(f)
    assert.equal(back.length, text.length)
    assert.equal(back, text)
    assert.equal(decoder.decode(encoder.encode(back)), text)
  })
})
