// sandbox.pty against envd's Process service with a terminal, as E2B's js-sdk tests (tests/sandbox/pty) use it.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { CommandExitError } from 'e2b'

import { HOME, debugSandbox, decoder, encoder, isAlive, waitFor, within } from './helpers.mjs'

let sandbox
const started = new Set()

before(async () => {
  sandbox = await debugSandbox()
})

after(async () => {
  for (const pid of started) await sandbox.pty.kill(pid).catch(() => {})
})

/** A terminal whose output is collected in `term.output` (decoded as it streams). */
async function terminal(opts = {}) {
  const term = { output: '' }
  const streamDecoder = new TextDecoder()
  term.handle = await sandbox.pty.create({
    cols: 80,
    rows: 24,
    ...opts,
    onData: (data) => {
      assert.ok(data instanceof Uint8Array)
      term.output += streamDecoder.decode(data, { stream: true })
    },
  })
  started.add(term.handle.pid)
  term.send = (text) => sandbox.pty.sendInput(term.handle.pid, encoder.encode(text))
  return term
}

/**
 * The value printed by `echo "KEY=..."`: the first `KEY=value` at the start of a line whose value holds no `$` or
 * `"`, so the terminal's echo of the typed command line (`echo "KEY=$(...)"`) never counts.
 */
function valueOf(output, key) {
  for (const m of output.matchAll(new RegExp(`(?:^|[\\r\\n])${key}=([^\\r\\n]*)\\r?\\n`, 'g'))) {
    if (!/[$"]/.test(m[1])) return m[1]
  }
  return undefined
}

describe('pty', () => {
  test('create a terminal, run a command in it, exit 0', async () => {
    const term = await terminal()
    assert.ok(Number.isInteger(term.handle.pid) && term.handle.pid > 0)
    await term.send('echo "OUT=$((6 * 7))"\nexit\n')
    const r = await within('the terminal to exit', term.handle.wait())
    assert.equal(r.exitCode, 0)
    assert.equal(term.handle.exitCode, 0)
    assert.equal(valueOf(term.output, 'OUT'), '42')
  })

  test('terminal runs bash as the default user in its home with TERM set', async () => {
    const term = await terminal()
    await term.send('echo "WHO=$(whoami):$(pwd):$TERM:$LANG"; [ -t 0 ] && echo "TTY=yes"\nexit\n')
    await within('the terminal to exit', term.handle.wait())
    assert.equal(valueOf(term.output, 'WHO'), `user:${HOME}:xterm-256color:C.UTF-8`)
    assert.equal(valueOf(term.output, 'TTY'), 'yes')
  })

  test('terminal with envs, cwd and user root', async () => {
    const term = await terminal({ envs: { FOO: 'bar' }, cwd: '/tmp', user: 'root' })
    await term.send('echo "ENV=$FOO:$(pwd):$(whoami)"\nexit\n')
    await within('the terminal to exit', term.handle.wait())
    assert.equal(valueOf(term.output, 'ENV'), 'bar:/tmp:root')
  })

  test('exit code of the shell is reported', async () => {
    const term = await terminal()
    await term.send('exit 5\n')
    await assert.rejects(within('the terminal to exit', term.handle.wait()), (err) => {
      assert.ok(err instanceof CommandExitError)
      assert.equal(err.exitCode, 5)
      return true
    })
  })

  test('sendInput passes control characters: Ctrl-C interrupts the foreground program', async () => {
    const term = await terminal()
    // Not `sleep 30; echo $?` on one line: an interactive bash drops the rest of a line whose command got SIGINT.
    await term.send('sleep 30\n')
    await waitFor('sleep to run in the terminal', async () => {
      const r = await sandbox.commands.run(`pgrep -P ${term.handle.pid} -x sleep || true`, { user: 'root' })
      return r.stdout.trim() !== ''
    })
    await term.send('\x03')
    await term.send('echo "AFTER=$?"\n')
    await waitFor('the interrupted sleep to return 130', () => valueOf(term.output, 'AFTER') === '130')
    await term.send('exit\n')
    await within('the terminal to exit', term.handle.wait())
  })

  test('resize changes the size the program sees (stty size)', async () => {
    const term = await terminal({ cols: 80, rows: 24 })
    await term.send('echo "SIZE1=$(stty size)"\n')
    await waitFor('the first stty size', () => valueOf(term.output, 'SIZE1'))
    assert.equal(valueOf(term.output, 'SIZE1'), '24 80')

    await sandbox.pty.resize(term.handle.pid, { cols: 100, rows: 40 })
    await term.send('echo "SIZE2=$(stty size) COLS=$(tput cols)"\nexit\n')
    await within('the terminal to exit', term.handle.wait())
    assert.equal(valueOf(term.output, 'SIZE2'), '40 100 COLS=100')
  })

  test('the size given at create is the terminal size (tput cols)', async () => {
    const term = await terminal({ cols: 132, rows: 50 })
    await term.send('echo "COLS=$(tput cols) LINES=$(tput lines)"\nexit\n')
    await within('the terminal to exit', term.handle.wait())
    assert.equal(valueOf(term.output, 'COLS'), '132 LINES=50')
  })

  test('kill ends the terminal', async () => {
    const term = await terminal()
    assert.equal(await sandbox.pty.kill(term.handle.pid), true)
    await assert.rejects(within('the killed terminal to end', term.handle.wait()), CommandExitError)
    await waitFor(`pid ${term.handle.pid} to be gone`, async () => !(await isAlive(sandbox, term.handle.pid)))
  })

  test('kill through the handle', async () => {
    const term = await terminal()
    assert.equal(await term.handle.kill(), true)
    await assert.rejects(within('the killed terminal to end', term.handle.wait()), CommandExitError)
  })

  test('kill of a terminal that does not exist returns false', async () => {
    assert.equal(await sandbox.pty.kill(999999), false)
  })

  test('connect: disconnect, reconnect with a new onData, keep the same shell', async () => {
    const term = await terminal({ envs: { FOO: 'bar' } })
    await term.send('echo "FIRST=$FOO"\n')
    await waitFor('output on the first connection', () => valueOf(term.output, 'FIRST'))
    await term.handle.disconnect()

    let output2 = ''
    const again = await sandbox.pty.connect(term.handle.pid, {
      onData: (d) => {
        output2 += decoder.decode(d)
      },
    })
    assert.equal(again.pid, term.handle.pid)
    await sandbox.pty.sendInput(term.handle.pid, encoder.encode('echo "SECOND=$FOO"\nexit\n'))
    const r = await within('the reconnected terminal to exit', again.wait())
    assert.equal(r.exitCode, 0)
    assert.equal(valueOf(term.output, 'FIRST'), 'bar')
    assert.equal(valueOf(output2, 'SECOND'), 'bar')
  })

  test('a terminal shows up in commands.list', async () => {
    const term = await terminal()
    const list = await sandbox.commands.list()
    const p = list.find((x) => x.pid === term.handle.pid)
    assert.ok(p, `pid ${term.handle.pid} missing from ${JSON.stringify(list)}`)
    assert.equal(p.cmd, '/bin/bash')
    assert.deepEqual(p.args, ['-i', '-l'])
    await term.handle.kill()
  })

  test('large output through the terminal', async () => {
    const term = await terminal()
    await term.send('head -c 200000 /dev/zero | tr "\\0" "x"; echo; echo "DONE=yes"\nexit\n')
    await within('the terminal to exit', term.handle.wait(), 30000)
    assert.equal(valueOf(term.output, 'DONE'), 'yes')
    assert.ok((term.output.match(/x/g) ?? []).length >= 200000)
  })
})
