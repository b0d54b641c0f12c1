// Calls the Capsule Connect server's test.Echo service with the official connect-es client
// (@connectrpc/connect-node) and prints one line per check: "PASS <name>" or "FAIL <name>: <why>",
// then "DONE <passed>/<total>". Exit code 0 only if every check passed.
// Usage: node interop.mjs http://127.0.0.1:<port>    (run by ConnectNodeInteropTest)
//
// The service is described by a hand-written descriptor (test/echo.proto in the Java tests), so the
// client derives JSON names and wire types itself, independently of the server's generated code.
import { create, createFileRegistry } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FieldDescriptorProto_Type as Type,
  FieldDescriptorProto_Label as Label,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport } from "@connectrpc/connect-node";

const baseUrl = process.argv[2];
if (!baseUrl) {
  console.error("usage: node interop.mjs <base url>");
  process.exit(2);
}

const field = (name, number, type, jsonName) => ({ name, number, type, label: Label.OPTIONAL, jsonName });
const file = create(FileDescriptorProtoSchema, {
  name: "test/echo.proto",
  package: "test",
  syntax: "proto3",
  messageType: [
    { name: "SayRequest", field: [field("text", 1, Type.STRING, "text"), field("big_number", 2, Type.INT64, "bigNumber"), field("data", 3, Type.BYTES, "data")] },
    { name: "SayResponse", field: [field("text", 1, Type.STRING, "text"), field("big_number", 2, Type.INT64, "bigNumber"), field("data", 3, Type.BYTES, "data")] },
    {
      name: "CountRequest",
      field: [field("up_to", 1, Type.UINT32, "upTo"), field("delay_ms", 2, Type.UINT32, "delayMs"),
        field("fail_with", 3, Type.STRING, "failWith"), field("payload_bytes", 4, Type.UINT32, "payloadBytes")],
    },
    { name: "CountResponse", field: [field("number", 1, Type.UINT32, "number"), field("payload", 2, Type.BYTES, "payload")] },
  ],
  service: [{
    name: "Echo",
    method: [
      { name: "Say", inputType: ".test.SayRequest", outputType: ".test.SayResponse" },
      { name: "Count", inputType: ".test.CountRequest", outputType: ".test.CountResponse", serverStreaming: true },
      { name: "Collect", inputType: ".test.SayRequest", outputType: ".test.SayResponse", clientStreaming: true },
      // Not served: the server must answer unimplemented.
      { name: "Missing", inputType: ".test.SayRequest", outputType: ".test.SayResponse" },
    ],
  }],
});
const Echo = createFileRegistry(file, () => undefined).getService("test.Echo");

let passed = 0;
let total = 0;

async function check(name, fn) {
  total++;
  try {
    await fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`.replaceAll("\n", " | "));
  }
}

function assertEq(actual, expected, what) {
  const a = typeof actual === "bigint" ? actual.toString() : JSON.stringify(actual);
  const b = typeof expected === "bigint" ? expected.toString() : JSON.stringify(expected);
  if (a !== b) throw new Error(`${what}: expected ${b}, got ${a}`);
}

async function expectError(promiseOrFn, code, messagePart) {
  try {
    await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    const err = ConnectError.from(e);
    assertEq(Code[err.code], Code[code], `error code (message: ${err.rawMessage})`);
    if (messagePart && !err.rawMessage.includes(messagePart)) {
      throw new Error(`error message "${err.rawMessage}" lacks "${messagePart}"`);
    }
    return err;
  }
  throw new Error(`expected ${Code[code]}, but the call succeeded`);
}

async function collect(iterable) {
  const out = [];
  for await (const m of iterable) out.push(m);
  return out;
}

for (const httpVersion of ["1.1", "2"]) {
  for (const binary of [false, true]) {
    const label = `http${httpVersion} ${binary ? "proto" : "json"}`;
    const client = createClient(Echo, createConnectTransport({ baseUrl, httpVersion, useBinaryFormat: binary }));
    const gzipClient = createClient(Echo, createConnectTransport({
      baseUrl, httpVersion, useBinaryFormat: binary,
      sendCompression: compressionGzip, acceptCompression: [compressionGzip], compressMinBytes: 0,
    }));

    await check(`${label} unary`, async () => {
      const res = await client.say({ text: "héllo", bigNumber: 9007199254740993n, data: new Uint8Array([1, 2, 3]) });
      assertEq(res.text, "héllo", "text");
      assertEq(res.bigNumber, 9007199254740993n, "bigNumber");
      assertEq(Array.from(res.data), [1, 2, 3], "data");
    });

    await check(`${label} unary response header`, async () => {
      let echoed;
      await client.say({ text: "header" }, { onHeader: (h) => { echoed = h.get("x-echo"); } });
      assertEq(echoed, "yes", "x-echo header");
    });

    await check(`${label} unary errors`, async () => {
      await expectError(client.say({ text: "error:not_found" }), Code.NotFound, "you asked for not_found");
      await expectError(client.say({ text: "error:permission_denied" }), Code.PermissionDenied);
      await expectError(client.say({ text: "error:resource_exhausted" }), Code.ResourceExhausted);
      await expectError(client.say({ text: "boom" }), Code.Internal);
      await expectError(client.say({}, { headers: { "x-deny": "1" } }), Code.Unauthenticated);
    });

    await check(`${label} unknown method`, async () => {
      await expectError(client.missing({}), Code.Unimplemented);
    });

    await check(`${label} server stream`, async () => {
      const got = await collect(client.count({ upTo: 5 }));
      assertEq(got.map((m) => m.number), [1, 2, 3, 4, 5], "numbers");
    });

    await check(`${label} server stream error after messages`, async () => {
      const got = [];
      await expectError(async () => {
        for await (const m of client.count({ upTo: 2, failWith: "failed_precondition" })) got.push(m.number);
      }, Code.FailedPrecondition, "after 2 messages");
      assertEq(got, [1, 2], "numbers before the error");
    });

    await check(`${label} gzip unary`, async () => {
      const text = "compress me ".repeat(2000);
      let encoding;
      const res = await gzipClient.say({ text }, { onHeader: (h) => { encoding = h.get("content-encoding"); } });
      assertEq(res.text, text, "text");
      assertEq(encoding, "gzip", "response content-encoding");
    });

    await check(`${label} gzip server stream`, async () => {
      let encoding;
      const got = await collect(gzipClient.count({ upTo: 3, payloadBytes: 8192 },
        { onHeader: (h) => { encoding = h.get("connect-content-encoding"); } }));
      assertEq(encoding, "gzip", "response connect-content-encoding");
      assertEq(got.map((m) => m.number), [1, 2, 3], "numbers");
      assertEq(got.map((m) => m.payload.length), [8192, 8192, 8192], "payload sizes");
    });

    await check(`${label} client timeout`, async () => {
      await expectError(client.say({ text: "sleep" }, { timeoutMs: 300 }), Code.DeadlineExceeded);
    });

    await check(`${label} server-enforced unary deadline`, async () => {
      // Only the header, no client-side timer: the server itself must answer deadline_exceeded.
      await expectError(client.say({ text: "sleep" }, { headers: { "connect-timeout-ms": "200" } }),
        Code.DeadlineExceeded, "Connect-Timeout-Ms");
    });

    await check(`${label} server-enforced stream deadline`, async () => {
      const got = [];
      await expectError(async () => {
        for await (const m of client.count({ upTo: 100000, delayMs: 20 }, { headers: { "connect-timeout-ms": "300" } })) {
          got.push(m.number);
        }
      }, Code.DeadlineExceeded, "Connect-Timeout-Ms");
      if (got.length >= 100000) throw new Error("the stream was not cut short");
    });

    await check(`${label} client stream`, async () => {
      async function* requests() {
        yield { text: "a", bigNumber: 1n };
        yield { text: "b", bigNumber: 2n };
        yield { text: "c", bigNumber: 3n };
      }
      const res = await client.collect(requests());
      assertEq(res.text, "a,b,c", "joined text");
      assertEq(res.bigNumber, 6n, "sum");
    });
  }
}

console.log(`DONE ${passed}/${total}`);
process.exit(passed === total ? 0 : 1);
