// FakePartwise, the server the JS client's tests run against, held to the server's own OpenAPI
// schema (drf-spectacular, `manage.py spectacular`): every answer the fake gives in a flow that
// touches every route the client uses, and every request the client sends, must match it.
// A fake that drifts from the server would let the client's tests pass against a server that
// does not exist. Needs the project's virtualenv (../.venv); skipped, with a message, without it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";

import { getUpload, listUploads, upload } from "./client.js";
import { FakePartwise, bytesOf, makeFile } from "./fake_partwise.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PYTHON = `${ROOT}.venv/bin/python`;

function loadSchema() {
  if (!existsSync(PYTHON)) return null;
  const run = spawnSync(PYTHON, ["manage.py", "spectacular", "--format", "openapi-json"], {
    cwd: ROOT,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.status !== 0) throw new Error(`manage.py spectacular failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** Problems of `value` against `schema` (a small OpenAPI 3.0 subset: what drf-spectacular emits). */
function check(spec, schema, value, where, problems = []) {
  if (schema.$ref) return check(spec, spec.components.schemas[schema.$ref.split("/").at(-1)], value, where, problems);
  if (value === null) {
    if (!schema.nullable && !schema.oneOf && !schema.allOf) problems.push(`${where}: null is not allowed`);
    return problems;
  }
  if (schema.allOf) for (const part of schema.allOf) check(spec, part, value, where, problems);
  if (schema.oneOf && !schema.oneOf.some((part) => !check(spec, part, value, where).length)) {
    problems.push(`${where}: matches none of oneOf`);
  }
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${where}: ${JSON.stringify(value)} not in ${schema.enum}`);
  const type = schema.type;
  const actual = Array.isArray(value) ? "array" : Number.isInteger(value) ? "integer" : typeof value;
  if (type && !(type === actual || (type === "number" && actual === "integer"))) {
    problems.push(`${where}: ${actual}, not ${type}`);
    return problems;
  }
  if (type === "string" && schema.pattern && !new RegExp(schema.pattern.replace(/\\u([0-9a-f]{4})/gi, "\\u$1"), "u").test(value)) {
    problems.push(`${where}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
  }
  if (actual === "array" && schema.items) value.forEach((item, i) => check(spec, schema.items, item, `${where}[${i}]`, problems));
  if (actual === "object" && schema.properties) {
    for (const name of schema.required ?? []) if (!(name in value)) problems.push(`${where}: missing ${name}`);
    for (const [name, item] of Object.entries(value)) {
      if (schema.properties[name]) check(spec, schema.properties[name], item, `${where}.${name}`, problems);
      else if (!schema.additionalProperties) problems.push(`${where}: unknown ${name}`);
    }
  }
  return problems;
}

/** The operation of the spec that serves `method path`, with its path template. */
function operation(spec, method, path) {
  for (const [template, item] of Object.entries(spec.paths)) {
    const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    if (pattern.test(path) && item[method.toLowerCase()]) return { template, op: item[method.toLowerCase()] };
  }
  return null;
}

const spec = loadSchema();

describe("FakePartwise and the client against the OpenAPI schema", { skip: spec ? false : `no virtualenv at ${PYTHON}` }, () => {
  // A recording fake: every call with the body sent and the answer given.
  async function recordedFlow() {
    const server = new FakePartwise({ partSize: 10 });
    const exchanges = [];
    const fetch = server.fetch;
    server.fetch = async (url, init = {}) => {
      const response = await fetch(url, init);
      const text = await response.clone().text();
      exchanges.push({
        method: init.method ?? "GET",
        path: new URL(url, "http://partwise.test").pathname,
        sent: init.body ? JSON.parse(init.body) : undefined,
        status: response.status,
        answer: text ? JSON.parse(text) : null,
      });
      return response;
    };
    const file = makeFile(100, { bytes: bytesOf(100) });
    // A fresh upload (create with resume and sign, sign, report, complete), a resumed one
    // (detail with the session), the list, and an abort.
    const first = upload(file, server.options({ partSize: 10, concurrency: 2 }));
    await first.promise;
    const other = makeFile(60, { seed: 5, name: "other.bin" });
    const paused = upload(other, server.options({ partSize: 10, concurrency: 1 }));
    await new Promise((resolve) => paused.on("part", () => resolve()));
    paused.pause();
    paused.resume();
    await paused.promise;
    await getUpload(first.upload.id, server.options({ session: "list-session-1" }));
    await listUploads({ status: "completed" }, server.options());
    const third = upload(makeFile(30, { seed: 9, name: "third.bin" }), server.options({ partSize: 10 }));
    await new Promise((resolve) => third.on("part", () => resolve()));
    await third.cancel();
    return exchanges;
  }

  test("every answer of the fake and every request of the client match the schema", async () => {
    const exchanges = await recordedFlow();
    const routes = new Set();
    const problems = [];
    for (const { method, path, sent, status, answer } of exchanges) {
      const found = operation(spec, method, path);
      assert.ok(found, `${method} ${path} is not in the schema`);
      routes.add(`${method} ${found.template}`);
      const body = found.op.requestBody?.content?.["application/json"]?.schema;
      if (sent !== undefined) {
        assert.ok(body, `${method} ${found.template} takes no body`);
        check(spec, body, sent, `request ${method} ${found.template}`, problems);
      }
      const declared = found.op.responses[String(status)]?.content?.["application/json"]?.schema;
      assert.ok(declared, `${method} ${found.template} declares no ${status} answer`);
      check(spec, declared, answer, `answer ${status} ${method} ${found.template}`, problems);
    }
    assert.deepEqual([...new Set(problems)], []);
    for (const route of [
      "POST /api/uploads/",
      "POST /api/uploads/{id}/sign/",
      "POST /api/uploads/{id}/parts/",
      "POST /api/uploads/{id}/complete/",
      "GET /api/uploads/{id}/",
      "GET /api/uploads/",
      "DELETE /api/uploads/{id}/",
    ]) {
      assert.ok(routes.has(route), `the flow covers ${route}: ${[...routes]}`);
    }
  });
});
