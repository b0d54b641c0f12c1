// Bad input to the API: exact statuses and `{code, message}` bodies, and what the SDK makes of them.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { Sandbox, api } from './helpers.mjs'

function assertError(r, status, pattern) {
  assert.equal(r.status, status, JSON.stringify(r.json))
  assert.equal(r.json.code, status)
  assert.match(r.json.message, pattern)
}

test('an unknown template is 404 naming it', async () => {
  assertError(await api('POST', '/v2/sandboxes', { body: { templateID: 'no-such-template' } }), 404, /no-such-template/)
  assertError(await api('POST', '/sandboxes', { body: { templateID: 'no-such-template' } }), 404, /no-such-template/)
  await assert.rejects(Sandbox.create('no-such-template'), (err) => /no-such-template/.test(err.message))
})

test('malformed JSON is 400', async () => {
  assertError(await api('POST', '/v2/sandboxes', { rawBody: '{"templateID": "base",' }), 400, /./)
  assertError(await api('POST', '/v2/sandboxes', { rawBody: '[1,2]' }), 400, /./)
  assertError(await api('POST', '/v2/sandboxes', { body: { templateID: 42 } }), 400, /templateID/)
  assertError(await api('POST', '/v2/sandboxes', { body: {} }), 400, /templateID/)
})

test('a timeout above the maximum is 400 and creates nothing', async () => {
  const before = (await api('GET', '/v2/sandboxes?limit=100')).json.length
  assertError(await api('POST', '/v2/sandboxes', { body: { templateID: 'base', timeout: 10_000_000 } }), 400, /timeout/)
  assertError(await api('POST', '/v2/sandboxes', { body: { templateID: 'base', timeout: -1 } }), 400, /timeout/)
  await assert.rejects(Sandbox.create('base', { timeoutMs: 10_000_000_000 }), /timeout/)
  assert.equal((await api('GET', '/v2/sandboxes?limit=100')).json.length, before)
})

test('an unknown sandbox is 404 everywhere', async () => {
  const id = 'nosuchsandbox0000000'
  assertError(await api('GET', `/sandboxes/${id}`), 404, new RegExp(id))
  assertError(await api('DELETE', `/sandboxes/${id}`), 404, new RegExp(id))
  assertError(await api('POST', `/sandboxes/${id}/timeout`, { body: { timeout: 30 } }), 404, new RegExp(id))
  assertError(await api('POST', `/v2/sandboxes/${id}/connect`, { body: { timeout: 30 } }), 404, new RegExp(id))
  await assert.rejects(Sandbox.getInfo(id), (err) => err.name === 'SandboxNotFoundError')
})

test('a bad or missing API key is 401; health needs none', async () => {
  assertError(await api('GET', '/v2/sandboxes', { key: 'e2b_0000000000000000000000000000000000000000' }), 401, /./)
  assertError(await api('GET', '/v2/sandboxes', { key: null }), 401, /./)
  assertError(await api('POST', '/v2/sandboxes', { key: 'nonsense', body: { templateID: 'base' } }), 401, /./)
  await assert.rejects(Sandbox.list({ apiKey: 'e2b_0000000000000000000000000000000000000000' }).nextItems(),
    (err) => err.name === 'AuthenticationError')
  assert.ok([200, 204].includes((await api('GET', '/health', { key: null })).status))
})
